// The part of X's web app that matters to the scraper, shared by the profile and search pages
// (the stand-in splices it into both): GraphQL requests by same-origin fetch (so the session
// cookies go along, as in X's app), one page of the timeline at first and the next page, by
// the bottom cursor, whenever the reader scrolls near the end. Each tweet is rendered as X
// renders it (article[data-testid="tweet"], div[data-testid="tweetText"], time[datetime],
// a permalink to /status/), so HTML captures look like X's.
//
// A scroll listener, not an IntersectionObserver: an observer on a bottom sentinel stops
// firing once the sentinel never leaves the viewport (seen in the design's experiment).
const QUERY_IDS = {
  UserByScreenName: 'G3KGOASz96M-Qu0nwmGXNg',
  UserTweets: 'E3opETHurmVJflFsUBVuUQ',
  SearchTimeline: 'AIdc203rPpK_k_2KWSdm7g',
};

async function gql(op, vars) {
  const url = `/i/api/graphql/${QUERY_IDS[op] || 'unknown'}/${op}?variables=` +
    encodeURIComponent(JSON.stringify(vars));
  const r = await fetch(url, { credentials: 'same-origin' });
  return r.json();
}

function userOf(result) {
  const u = result?.core?.user_results?.result ?? {};
  return {
    screen: u.core?.screen_name ?? u.legacy?.screen_name ?? '',
    name: u.core?.name ?? u.legacy?.name ?? '',
  };
}

function renderTweet(list, result, promoted) {
  if (!result) return;
  if (result.__typename === 'TweetWithVisibilityResults') result = result.tweet;
  if (result.__typename === 'TweetTombstone' || result.__typename === 'TweetUnavailable') {
    const gone = document.createElement('div');
    gone.setAttribute('data-testid', 'tombstone');
    gone.textContent = result.tombstone?.text?.text ?? 'This Post is unavailable.';
    list.appendChild(gone);
    return;
  }
  const legacy = result.legacy ?? {};
  const user = userOf(result);
  const article = document.createElement('article');
  article.setAttribute('data-testid', 'tweet');
  article.setAttribute('role', 'article');
  const who = document.createElement('div');
  who.setAttribute('data-testid', 'User-Name');
  who.textContent = `${user.name} @${user.screen}`;
  const link = document.createElement('a');
  link.href = `/${user.screen}/status/${result.rest_id}`;
  const time = document.createElement('time');
  const created = new Date(legacy.created_at);
  time.setAttribute('datetime', isNaN(created) ? '' : created.toISOString());
  time.textContent = legacy.created_at ?? '';
  link.appendChild(time);
  const text = document.createElement('div');
  text.setAttribute('data-testid', 'tweetText');
  text.setAttribute('lang', legacy.lang ?? '');
  text.textContent = result.note_tweet?.note_tweet_results?.result?.text ?? legacy.full_text ?? '';
  article.append(who, link, text);
  if (promoted) {
    const ad = document.createElement('span');
    ad.textContent = 'Ad';
    article.appendChild(ad);
  }
  list.appendChild(article);
}

function renderEntry(list, entry) {
  const content = entry.content ?? {};
  const promoted = entry.entryId.startsWith('promoted-');
  if (content.itemContent) renderTweet(list, content.itemContent.tweet_results?.result, promoted);
  for (const item of content.items ?? []) renderTweet(list, item.item?.itemContent?.tweet_results?.result, false);
}

// Runs a timeline: `first()` prepares (returns false to stop), `fetchPage(cursor)` returns the
// instructions of one page.
function startTimeline(first, fetchPage) {
  const list = document.getElementById('tl');
  let cursor = null, busy = false, done = false;
  async function more() {
    if (busy || done) return;
    busy = true;
    try {
      const instructions = await fetchPage(cursor);
      let added = 0;
      for (const ins of instructions ?? []) {
        const pinned = ins.type === 'TimelinePinEntry';
        for (const e of ins.entries ?? (ins.entry ? [ins.entry] : [])) {
          if (e.entryId.startsWith('cursor-bottom')) {
            if (e.content.value === cursor) done = true;
            cursor = e.content.value;
          } else if (!e.entryId.startsWith('cursor-')) {
            if (pinned) list.setAttribute('data-pinned', e.entryId);
            renderEntry(list, e);
            added++;
          }
        }
      }
      if (!added) {
        done = true;
        document.body.setAttribute('data-timeline-end', 'true');
      }
    } catch (err) {
      done = true;
      const alert = document.createElement('div');
      alert.setAttribute('role', 'alert');
      alert.textContent = 'Something went wrong. Try reloading.';
      list.appendChild(alert);
    }
    busy = false;
    // Like X's app: while the end of the list is on screen (a short page, a tall window),
    // the next page is fetched without waiting for a scroll that cannot happen.
    if (!done && nearBottom()) more();
  }
  function nearBottom() {
    return innerHeight + scrollY >= document.body.scrollHeight - 400;
  }
  (async () => { if (await first()) await more(); })();
  addEventListener('scroll', () => {
    if (nearBottom()) more();
  });
}
