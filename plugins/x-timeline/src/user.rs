//! X user objects → the `profile` record.
//!
//! Real responses carry three shapes of user (REFERENCE.md), sometimes mixed in one
//! capture, so every field is looked up newest location first:
//! - older: everything under `legacy`;
//! - 2025: `core.{screen_name, name, created_at}`, counts still under `legacy`;
//! - 2026: no `legacy`; `core`, `relationship_counts`, `tweet_counts`, `action_counts`,
//!   `avatar`, `banner`, `profile_bio`, `location`, `privacy`, `verification`,
//!   `pinned_items`, `website`.

use impressox_plugin_sdk::types::Profile;
use serde_json::Value;

use crate::collect::Collector;
use crate::json::{self, first_array, first_bool, first_str, first_u64};
use crate::text;

/// The author facts a tweet needs (`rest_id`, `screen_name`), read leniently: a tweet is
/// still worth keeping when its author's profile is malformed elsewhere.
pub(crate) fn handle(user: &Value) -> (Option<&str>, Option<&str>) {
    let id = json::str_at(user, &["rest_id"]).ok().flatten();
    let name = first_str(
        user,
        &[&["core", "screen_name"], &["legacy", "screen_name"]],
    )
    .ok()
    .flatten();
    (id, name)
}

/// Normalize `user` into the collector unless a profile with its id is already there.
/// An error names what was wrong; the caller records it as skipped.
pub(crate) fn collect(user: &Value, out: &mut Collector) -> Result<(), String> {
    match json::str_at(user, &["__typename"])? {
        None | Some("User") => {}
        Some("UserUnavailable") => {
            let reason = json::str_at(user, &["reason"])
                .ok()
                .flatten()
                .unwrap_or("no reason given");
            return Err(format!("UserUnavailable: {reason}"));
        }
        Some(other) => return Err(format!("unknown user __typename {other}")),
    }
    let id = json::str_at(user, &["rest_id"])?.ok_or("user has no rest_id")?;
    if out.has_profile(id) {
        return Ok(());
    }
    let profile = parse(user, id)?;
    out.push_profile(profile);
    Ok(())
}

fn parse(user: &Value, id: &str) -> Result<Profile, String> {
    let username = first_str(
        user,
        &[&["core", "screen_name"], &["legacy", "screen_name"]],
    )?
    .ok_or("user has no screen_name")?;
    let created = match first_str(user, &[&["core", "created_at"], &["legacy", "created_at"]])? {
        Some(raw) => text::x_date_to_rfc3339(raw)
            .ok_or_else(|| format!("user created_at {raw:?} is not X's date format"))?,
        None => String::new(),
    };
    let description = first_str(
        user,
        &[&["profile_bio", "description"], &["legacy", "description"]],
    )?
    .unwrap_or("");
    let count = |paths: &[&[&str]]| first_u64(user, paths).map(|n| n.unwrap_or(0));

    Ok(Profile {
        id: id.to_string(),
        username: username.to_string(),
        display_name: first_str(user, &[&["core", "name"], &["legacy", "name"]])?
            .unwrap_or("")
            .to_string(),
        created,
        description: text::decode_entities(description).into_owned(),
        // 2025+ wraps the location in an object; the older shape has a plain string.
        location: first_str(user, &[&["location", "location"], &["legacy", "location"]])?
            .unwrap_or("")
            .to_string(),
        followers_count: count(&[
            &["relationship_counts", "followers"],
            &["legacy", "followers_count"],
        ])?,
        following_count: count(&[
            &["relationship_counts", "following"],
            &["legacy", "friends_count"],
        ])?,
        statuses_count: count(&[&["tweet_counts", "tweets"], &["legacy", "statuses_count"]])?,
        favourites_count: count(&[
            &["action_counts", "favorites_count"],
            &["legacy", "favourites_count"],
        ])?,
        media_count: count(&[
            &["tweet_counts", "media_tweets"],
            &["legacy", "media_count"],
        ])?,
        profile_image_url: first_str(
            user,
            &[
                &["avatar", "image_url"],
                &["legacy", "profile_image_url_https"],
            ],
        )?
        .unwrap_or("")
        .to_string(),
        profile_banner_url: first_str(
            user,
            &[&["banner", "image_url"], &["legacy", "profile_banner_url"]],
        )?
        .map(str::to_string),
        website: website(user)?,
        verified: first_bool(
            user,
            &[&["verification", "verified"], &["legacy", "verified"]],
        )?
        .unwrap_or(false),
        blue: json::bool_at(user, &["is_blue_verified"])?.unwrap_or(false),
        protected: first_bool(user, &[&["privacy", "protected"], &["legacy", "protected"]])?
            .unwrap_or(false),
        pinned_tweet_ids: first_array(
            user,
            &[
                &["pinned_items", "tweet_ids_str"],
                &["legacy", "pinned_tweet_ids_str"],
            ],
        )?
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect(),
        raw_json: serde_json::to_string(user)
            .map_err(|e| format!("user does not serialize: {e}"))?,
    })
}

/// The profile's website: 2026 has it plainly; before, `legacy.url` is a t.co link whose
/// expansion sits in `legacy.entities.url.urls[0].expanded_url`.
fn website(user: &Value) -> Result<Option<String>, String> {
    if let Some(url) = json::str_at(user, &["website", "url"])? {
        return Ok(Some(url.to_string()));
    }
    let expanded = json::array_at(user, &["legacy", "entities", "url", "urls"])?
        .first()
        .and_then(|u| json::str_at(u, &["expanded_url"]).ok().flatten());
    match expanded {
        Some(url) => Ok(Some(url.to_string())),
        None => Ok(json::str_at(user, &["legacy", "url"])?.map(str::to_string)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(user: &Value) -> Result<Profile, String> {
        let mut out = Collector::default();
        collect(user, &mut out)?;
        out.profiles
            .into_iter()
            .next()
            .ok_or_else(|| "no profile".to_string())
    }

    #[test]
    fn unavailable_and_malformed_users_are_errors() {
        let gone = json!({"__typename": "UserUnavailable", "reason": "Suspended"});
        assert_eq!(
            one(&gone).err().as_deref(),
            Some("UserUnavailable: Suspended")
        );
        let no_id = json!({"__typename": "User", "core": {"screen_name": "a"}});
        assert_eq!(one(&no_id).err().as_deref(), Some("user has no rest_id"));
        let bad_count = json!({"rest_id": "1", "core": {"screen_name": "a"}, "relationship_counts": {"followers": "many"}});
        assert_eq!(
            one(&bad_count).err().as_deref(),
            Some("relationship_counts.followers is \"many\", expected a count")
        );
        let bad_date =
            json!({"rest_id": "1", "core": {"screen_name": "a", "created_at": "2020-01-01"}});
        assert!(one(&bad_date).is_err());
    }

    #[test]
    fn minimal_user_gets_defaults() {
        let p = one(
            &json!({"rest_id": "7", "legacy": {"screen_name": "min", "url": "https://t.co/x"}}),
        );
        assert!(p.is_ok(), "{p:?}");
        if let Ok(p) = p {
            assert_eq!(
                (p.id.as_str(), p.username.as_str(), p.created.as_str()),
                ("7", "min", "")
            );
            assert_eq!(p.followers_count, 0);
            assert_eq!(p.website.as_deref(), Some("https://t.co/x"));
            assert!(!p.verified && !p.blue && !p.protected);
            assert!(p.pinned_tweet_ids.is_empty());
        }
    }

    #[test]
    fn handle_is_lenient() {
        let user = json!({"rest_id": "9", "core": {"screen_name": "n"}, "relationship_counts": {"followers": "x"}});
        assert_eq!(handle(&user), (Some("9"), Some("n")));
        assert_eq!(handle(&json!(null)), (None, None));
    }
}
