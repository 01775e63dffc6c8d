//! Ids of the x-timeline fixtures the stand-in serves (plugins/x-timeline/tests/common/mod.rs
//! pins the same ones for the plugin's own tests).

pub const HANDLE: &str = "coinledger_ana";
pub const ANA: &str = "1453287640927653889";
/// Page 1.
pub const A: &str = "1990714142880702470"; // plain tweet, $BTC $ETH
pub const B: &str = "1990528284881858569"; // TweetWithVisibilityResults
pub const C: &str = "1985045452944314371"; // pinned note tweet
pub const D: &str = "1987852738360262668"; // promoted
pub const E: &str = "1989966667576266767"; // tombstone
pub const H: &str = "1989249630335971361"; // Ana's reply in a conversation module
/// Page 2.
pub const J: &str = "1988664336184348747";
pub const N: &str = "1987810459776036945"; // note tweet, $ARB $OP $TIA past 280 characters
pub const D2: &str = "1987490350494761044"; // promoted
pub const E2: &str = "1987429952517165143"; // tombstone
/// Page 3.
pub const O: &str = "1986493783864373341";
pub const U: &str = "1985969076433977440";
/// Bottom cursors of pages 1, 2, 3.
pub const BOTTOM1: &str = "DAABCgABG6dxr4R__-YKAAIbn9BOpBaRFggAAwAAAAIAAA";
pub const BOTTOM2: &str = "DAABCgABG6dxr4R__-YKAAIbnVvJkFqRYQgAAwAAAAIAAA";
pub const BOTTOM3: &str = "DAABCgABG6dxr4R__-YKAAIbmu7wYBqRhAgAAwAAAAIAAA";
/// search_timeline*.json
pub const S1: &str = "1990722158195703856";
pub const S2: &str = "1990722061726715955";
pub const S3: &str = "1990721180922880054"; // quotes A (present)
pub const S4: &str = "1990719125713924153"; // TweetUnavailable
pub const S5: &str = "1990718874055688252"; // promoted
pub const S6: &str = "1990716609131532351"; // page 2
