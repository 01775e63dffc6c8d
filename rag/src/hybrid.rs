//! Reciprocal rank fusion: one ranking from the vector ranking and the BM25 ranking.
//!
//! Cosine similarities and BM25 scores are on scales that cannot be added (BM25 grows with
//! rare terms and has no upper bound). RRF uses ranks only: a chunk at rank r (1-based) in a
//! list earns 1 / (K + r), summed over the lists it appears in. K = 60, the constant of the
//! method's paper (Cormack, Clarke, Büttcher 2009), damps the difference between the first
//! few ranks so that agreement between the lists beats a single first place.

use std::collections::HashMap;

/// The RRF constant.
pub const RRF_K: f32 = 60.0;

/// Fuses rankings of ids (best first) into one: (id, fused score), best first; ties keep
/// the order of first appearance (vector list first).
pub fn fuse<'a>(lists: &[&[&'a str]]) -> Vec<(&'a str, f32)> {
    let mut scores: HashMap<&str, (f32, usize)> = HashMap::new();
    let mut seen = 0;
    for list in lists {
        for (rank, id) in list.iter().enumerate() {
            let e = scores.entry(id).or_insert_with(|| {
                seen += 1;
                (0.0, seen)
            });
            e.0 += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
    }
    let mut out: Vec<(&str, f32, usize)> = scores
        .into_iter()
        .map(|(id, (s, first))| (id, s, first))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    out.into_iter().map(|(id, s, _)| (id, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_beats_a_single_first_place() {
        let vector = ["a", "b", "c"];
        let lexical = ["d", "b", "a"];
        let fused = fuse(&[&vector, &lexical]);
        let ids: Vec<&str> = fused.iter().map(|x| x.0).collect();
        // a: 1/61 + 1/63, b: 1/62 + 1/62, d: 1/61, c: 1/63.
        assert_eq!(ids, ["a", "b", "d", "c"]);
        assert!((fused[0].1 - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-6);
        assert!(fuse(&[]).is_empty());
    }
}
