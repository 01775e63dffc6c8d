//! Which captured responses are X GraphQL calls, and which operation each one is.

/// The path prefix of every X GraphQL call: `/i/api/graphql/<query id>/<Operation>?...`.
const GRAPHQL_MARKER: &str = "/i/api/graphql/";

/// The operations this plugin reads; every other GraphQL call only contributes rate
/// limits and account signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    UserTweets,
    UserTweetsAndReplies,
    UserByScreenName,
    SearchTimeline,
    TweetDetail,
}

impl Operation {
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "UserTweets" => Self::UserTweets,
            "UserTweetsAndReplies" => Self::UserTweetsAndReplies,
            "UserByScreenName" => Self::UserByScreenName,
            "SearchTimeline" => Self::SearchTimeline,
            "TweetDetail" => Self::TweetDetail,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::UserTweets => "UserTweets",
            Self::UserTweetsAndReplies => "UserTweetsAndReplies",
            Self::UserByScreenName => "UserByScreenName",
            Self::SearchTimeline => "SearchTimeline",
            Self::TweetDetail => "TweetDetail",
        }
    }
}

/// The operation name of a GraphQL URL (the path segment after the query id), or `None`
/// for any other URL. The query id changes with every X web release, so it is ignored.
pub(crate) fn operation(url: &str) -> Option<&str> {
    let (_, after) = url.split_once(GRAPHQL_MARKER)?;
    let mut segments = after.split('/');
    let _query_id = segments.next()?;
    let op = segments.next()?.split(['?', '#']).next()?;
    (!op.is_empty()).then_some(op)
}

/// True for X API calls (GraphQL and the older REST endpoints), whose status codes and
/// error bodies speak about the account; a 403 from an image CDN says nothing about it.
pub(crate) fn is_api_url(url: &str) -> bool {
    url.contains("/i/api/") || url.contains("//api.x.com/") || url.contains("//api.twitter.com/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_operation_after_the_query_id() {
        assert_eq!(
            operation(
                "https://x.com/i/api/graphql/E3opETHurmVJflFsUBVuUQ/UserTweets?variables=%7B%22userId%22%3A%221%22%7D"
            ),
            Some("UserTweets")
        );
        assert_eq!(
            operation("https://x.com/i/api/graphql/abc/TweetDetail"),
            Some("TweetDetail")
        );
        assert_eq!(
            operation("https://x.com/i/api/graphql/abc/SearchTimeline#x"),
            Some("SearchTimeline")
        );
        assert_eq!(operation("https://x.com/i/api/graphql/abc"), None);
        assert_eq!(operation("https://x.com/i/api/graphql/abc/?q=1"), None);
        assert_eq!(
            operation("https://x.com/i/api/1.1/jot/client_event.json"),
            None
        );
        assert_eq!(
            Operation::from_name("UserTweetsAndReplies").map(Operation::name),
            Some("UserTweetsAndReplies")
        );
        assert_eq!(Operation::from_name("HomeTimeline"), None);
    }

    #[test]
    fn api_urls() {
        assert!(is_api_url("https://x.com/i/api/graphql/abc/UserTweets"));
        assert!(is_api_url("https://api.x.com/1.1/account/settings.json"));
        assert!(!is_api_url("https://pbs.twimg.com/media/abc.jpg"));
    }
}
