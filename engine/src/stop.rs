//! Stop strings: text is released as it streams, except a tail that could still be the start
//! of a stop string; when a stop string appears the text before it is the end of the output.

#[derive(Clone, Debug)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
    /// The stop string that ended the text.
    matched: Option<String>,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> StopMatcher {
        StopMatcher { stops: stops.into_iter().filter(|s| !s.is_empty()).collect(), held: String::new(), matched: None }
    }

    pub fn stopped(&self) -> bool {
        self.matched.is_some()
    }

    /// The stop string that ended the text (the earliest in the text when several occur).
    pub fn matched(&self) -> Option<&str> {
        self.matched.as_deref()
    }

    /// Add text; returns what can be released now. After a stop string, returns nothing more.
    pub fn push(&mut self, text: &str) -> String {
        if self.stopped() {
            return String::new();
        }
        self.held.push_str(text);
        if let Some((at, stop)) = self.stops.iter().filter_map(|s| self.held.find(s.as_str()).map(|at| (at, s))).min_by_key(|(at, _)| *at) {
            self.matched = Some(stop.clone());
            let out = self.held[..at].to_string();
            self.held.clear();
            return out;
        }
        // Hold back the longest tail that is a proper prefix of some stop string.
        let keep = self
            .stops
            .iter()
            .flat_map(|s| (1..s.len()).rev().filter(move |&n| s.is_char_boundary(n)).map(move |n| &s[..n]))
            .filter(|p| self.held.ends_with(p))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        out
    }

    /// The end of the stream: whatever is held is released.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stops_and_holds_back_partial_matches() {
        let mut m = StopMatcher::new(vec!["END".into(), "\n\n".into()]);
        assert_eq!(m.push("hello E"), "hello ");
        assert_eq!(m.push("N"), "");
        assert_eq!(m.push("X"), "ENX");
        assert_eq!(m.push(" a\n"), " a");
        assert_eq!(m.push("\nmore"), "");
        assert!(m.stopped());
        assert_eq!(m.matched(), Some("\n\n"));
        assert_eq!(m.push("ignored"), "");
    }

    proptest! {
        /// Streaming in any chunks releases exactly the text before the first stop string.
        #[test]
        fn chunked_equals_one_shot(text in "[ab\\nXY]{0,40}", cuts in prop::collection::vec(0usize..40, 0..6)) {
            let stops = vec!["XY".to_string(), "a\nb".to_string()];
            let first = stops.iter().filter_map(|s| text.find(s.as_str())).min();
            let want = first.map_or(text.as_str(), |i| &text[..i]).to_string();
            let mut m = StopMatcher::new(stops);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
            cuts.sort();
            let (mut got, mut at) = (String::new(), 0);
            for c in cuts.into_iter().chain([text.len()]) {
                got += &m.push(&text[at..c]);
                at = c;
            }
            if !m.stopped() { got += &m.finish(); }
            prop_assert_eq!(got, want);
        }
    }
}
