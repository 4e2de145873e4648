//! A forced continuation: once triggered (at once, or after a given token such as `</think>`),
//! the next tokens must be exactly `tokens`; after them sampling is free again. Used for
//! `tool_choice` required/named (the DSML opening is forced) and by the server's test hook.

use super::Constraint;

pub struct ForcePrefix {
    /// The token after which forcing starts (None: from the first token).
    after: Option<u32>,
    triggered: bool,
    tokens: Vec<u32>,
    at: usize,
}

impl ForcePrefix {
    pub fn new(after: Option<u32>, tokens: Vec<u32>) -> ForcePrefix {
        ForcePrefix { triggered: after.is_none(), after, tokens, at: 0 }
    }
}

impl Constraint for ForcePrefix {
    fn mask(&mut self, logits: &mut [f32]) {
        if !self.triggered || self.at >= self.tokens.len() {
            return;
        }
        let want = self.tokens[self.at] as usize;
        for (i, l) in logits.iter_mut().enumerate() {
            if i != want {
                *l = f32::NEG_INFINITY;
            }
        }
        if let Some(l) = logits.get_mut(want) {
            if !l.is_finite() {
                *l = 0.0;
            }
        }
    }

    fn advance(&mut self, token: u32) {
        if !self.triggered {
            self.triggered = Some(token) == self.after;
        } else if self.at < self.tokens.len() {
            self.at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forces_after_the_trigger_then_frees() {
        let mut c = ForcePrefix::new(Some(9), vec![3, 4]);
        let mut l = vec![0.0; 10];
        c.mask(&mut l);
        assert!(l.iter().all(|v| v.is_finite()), "free before the trigger");
        c.advance(9);
        let mut l = vec![1.0; 10];
        c.mask(&mut l);
        assert_eq!(l.iter().filter(|v| v.is_finite()).count(), 1);
        assert!(l[3].is_finite());
        c.advance(3);
        let mut l = vec![1.0; 10];
        c.mask(&mut l);
        assert!(l[4].is_finite() && !l[3].is_finite());
        c.advance(4);
        let mut l = vec![1.0; 10];
        c.mask(&mut l);
        assert!(l.iter().all(|v| v.is_finite()), "free after the forced tokens");
    }
}
