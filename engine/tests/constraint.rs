//! JSON-constrained decoding: the byte-level grammar against serde_json (proptest), and a
//! constrained random "sampler" over the real DeepSeek-V4 vocabulary.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use dsv4_engine::chat::THINK_END;
use dsv4_engine::constraint::json::{looks_special, validate, JsonConstraint, JsonGrammar, JsonSchema};
use dsv4_engine::constraint::Constraint;
use dsv4_engine::sampling::Rng;
use dsv4_engine::tokenizer::Tokenizer;
use proptest::prelude::*;
use serde_json::{json, Value};

const TOKENIZER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/tokenizer/tokenizer.json");

fn tokenizer() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| Tokenizer::from_file(TOKENIZER).unwrap())
}

// ---------------------------------------------------------------------------------------------
// The grammar against serde_json

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // The grammar keeps magnitudes below 1e308 (see the module docs).
        any::<f64>().prop_filter("finite, < 1e300", |f| f.is_finite() && f.abs() < 1e300).prop_map(Value::from),
        "[a-zA-Z0-9 /é€😀\\\\\"\n\t\u{1}\u{7f}]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z_é😀\"\\\\]{0,6}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Serialise with random whitespace between tokens and random (valid) escapes in strings.
struct Writer {
    rng: Rng,
    out: String,
}

impl Writer {
    fn chance(&mut self, p: f64) -> bool {
        self.rng.next_f64() < p
    }
    fn ws(&mut self) {
        const WS: [&str; 6] = [" ", "\n", "\n    ", "\t", "\r\n", "  "];
        if self.chance(0.3) {
            let w = WS[(self.rng.next_u64() % WS.len() as u64) as usize];
            self.out.push_str(w);
        }
    }
    fn hex4(&mut self, u: u32) {
        let s = format!("\\u{u:04x}");
        let s = if self.chance(0.5) { s.to_uppercase().replace("\\U", "\\u") } else { s };
        self.out.push_str(&s);
    }
    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            let short = match c {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '\n' => Some("\\n"),
                '\t' => Some("\\t"),
                '\r' => Some("\\r"),
                '\u{8}' => Some("\\b"),
                '\u{c}' => Some("\\f"),
                '/' if self.chance(0.5) => Some("\\/"),
                _ => None,
            };
            let must = (c as u32) < 0x20 || c == '"' || c == '\\';
            if let Some(e) = short.filter(|_| self.chance(0.7)) {
                self.out.push_str(e);
            } else if must || self.chance(0.15) {
                let mut units = [0u16; 2];
                for &u in c.encode_utf16(&mut units).iter() {
                    self.hex4(u as u32);
                }
            } else {
                self.out.push(c);
            }
        }
        self.out.push('"');
    }
    fn value(&mut self, v: &Value) {
        match v {
            Value::Array(a) => {
                self.out.push('[');
                self.ws();
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        self.ws();
                        self.out.push(',');
                        self.ws();
                    }
                    self.value(x);
                }
                self.ws();
                self.out.push(']');
            }
            Value::Object(m) => {
                self.out.push('{');
                self.ws();
                for (i, (k, x)) in m.iter().enumerate() {
                    if i > 0 {
                        self.ws();
                        self.out.push(',');
                        self.ws();
                    }
                    self.string(k);
                    self.ws();
                    self.out.push(':');
                    self.ws();
                    self.value(x);
                }
                self.ws();
                self.out.push('}');
            }
            Value::String(s) => self.string(s),
            other => self.out.push_str(&other.to_string()),
        }
    }
}

fn write(v: &Value, seed: u64) -> String {
    let mut w = Writer { rng: Rng::new(seed), out: String::new() };
    w.ws();
    w.value(v);
    w.out
}

/// The whole of `bytes` is accepted and complete.
fn grammar_accepts(bytes: &[u8]) -> bool {
    let mut g = JsonGrammar::new();
    bytes.iter().all(|&b| g.push(b)) && g.is_complete()
}

fn is_json_ws(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Every number of valid JSON `text` is within the grammar's bounds: at most 8 exponent digits,
/// integer digits + positive exponent <= 308.
fn numbers_within_limits(text: &[u8]) -> bool {
    let (mut i, mut in_str) = (0, false);
    while i < text.len() {
        let b = text[i];
        if in_str {
            match b {
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_str = true;
        } else if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < text.len() && matches!(text[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                i += 1;
            }
            let num = std::str::from_utf8(&text[start..i]).unwrap();
            let (mant, exp) = num.split_once(['e', 'E']).unwrap_or((num, "0"));
            let int_digits = mant.trim_start_matches('-').split('.').next().unwrap().len();
            let exp_digits = exp.trim_start_matches(['+', '-']);
            if exp_digits.len() > 8 {
                return false;
            }
            let e: usize = exp_digits.parse().unwrap();
            if !exp.starts_with('-') && int_digits + e > 308 {
                return false;
            }
            continue;
        }
        i += 1;
    }
    true
}

const MUTATIONS: &[u8] = b"{}[],:\"\\ \n\t0123456789-+.eEtfnulrsabxXuU/\x01\x7f\x80\xbf\xc3\xed\xf0\xff";

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Every prefix of a valid document is accepted, and the whole is complete and equal to
    /// the value.
    #[test]
    fn every_prefix_of_valid_json_is_accepted(v in arb_value(), seed in any::<u64>()) {
        let text = write(&v, seed);
        // (Floats compared as serde_json reads its own output: its parsing is not exact.)
        let canonical: Value = serde_json::from_str(&v.to_string()).unwrap();
        prop_assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), canonical);
        let mut g = JsonGrammar::new();
        for (i, &b) in text.as_bytes().iter().enumerate() {
            prop_assert!(g.push(b), "byte {} of {:?} rejected", i, text);
            // A closed value is complete; an open one is not (top-level numbers excepted).
            if g.is_done() {
                prop_assert_eq!(i + 1, text.len());
            }
        }
        prop_assert!(g.is_complete(), "{:?} not complete", text);
        // The same through multi-byte steps.
        let mut g = JsonGrammar::new();
        for chunk in text.as_bytes().chunks(1 + (seed % 7) as usize) {
            prop_assert!(g.accepts(chunk));
            prop_assert!(g.push_bytes(chunk));
        }
        prop_assert!(g.is_complete());
    }

    /// One byte changed: the grammar accepts the document exactly when serde_json does
    /// (trailing whitespace, which serde_json allows and the grammar does not generate, aside).
    #[test]
    fn mutations_agree_with_serde(v in arb_value(), seed in any::<u64>(), pos in any::<prop::sample::Index>(), m in 0..MUTATIONS.len()) {
        let mut bytes = write(&v, seed).into_bytes();
        let i = pos.index(bytes.len());
        bytes[i] = MUTATIONS[m];
        let serde_ok = serde_json::from_slice::<Value>(&bytes).is_ok();
        // A mutation can merge numbers past the grammar's documented bounds.
        prop_assume!(!serde_ok || numbers_within_limits(&bytes));
        let end = bytes.iter().rposition(|b| !is_json_ws(b)).map_or(0, |p| p + 1);
        let ours = grammar_accepts(&bytes[..end]);
        prop_assert_eq!(ours, serde_ok, "{:?}", String::from_utf8_lossy(&bytes));
    }

    /// Under a schema: every valid value (any key order, whitespace, escapes) is accepted; a
    /// mutated document the grammar accepts parses and passes `validate`.
    #[test]
    fn schema_values(v in arb_weather(), seed in any::<u64>(), pos in any::<prop::sample::Index>(), m in 0..MUTATIONS.len()) {
        let schema = weather_schema();
        validate(&v, &schema).unwrap();
        let text = write(&v, seed);
        let mut g = JsonGrammar::with_schema(Arc::new(JsonSchema::compile(&schema)));
        for (i, &b) in text.as_bytes().iter().enumerate() {
            prop_assert!(g.push(b), "byte {} of {:?} rejected", i, text);
        }
        prop_assert!(g.is_complete());
        let mut bytes = text.into_bytes();
        let i = pos.index(bytes.len());
        bytes[i] = MUTATIONS[m];
        let mut g = JsonGrammar::with_schema(Arc::new(JsonSchema::compile(&schema)));
        let end = bytes.iter().rposition(|b| !is_json_ws(b)).map_or(0, |p| p + 1);
        if bytes[..end].iter().all(|&b| g.push(b)) && g.is_complete() {
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert!(validate(&v, &schema).is_ok(), "{:?}", String::from_utf8_lossy(&bytes));
        }
    }

    /// Numbers: the exact RFC 8259 grammar.
    #[test]
    fn numbers(s in "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,12})?([eE][+-]?[0-9]{1,2})?") {
        prop_assert!(grammar_accepts(s.as_bytes()), "{}", s);
        prop_assert!(serde_json::from_str::<Value>(&s).is_ok());
        let arr = format!("[{s},{s} ,{{\"k\":{s}}}]");
        prop_assert!(grammar_accepts(arr.as_bytes()), "{}", arr);
    }

    /// Random byte strings: accepted and complete only if serde_json parses them.
    #[test]
    fn random_bytes_are_sound(s in "[\\[\\]{},:\" 0-9a-z.eE+\\\\-]{1,16}") {
        if grammar_accepts(s.as_bytes()) {
            prop_assert!(serde_json::from_str::<Value>(&s).is_ok(), "{}", s);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The constraint on the real vocabulary

#[test]
fn special_tokens_of_the_real_vocab() {
    let t = tokenizer();
    let table = t.token_bytes_table();
    assert_eq!(table.len(), 129_280);
    for (id, b) in table.iter().enumerate() {
        let added = !(3..128_000).contains(&id);
        assert_eq!(looks_special(b), added, "id {id}: {:?}", String::from_utf8_lossy(b));
        if t.is_special(id as u32) {
            assert!(looks_special(b));
        }
    }
}

fn think_end() -> u32 {
    tokenizer().token_id(THINK_END).unwrap()
}

/// Values valid under [`weather_schema`], keys in random order.
fn arb_weather() -> impl Strategy<Value = Value> {
    let text = "[a-zA-Z0-9 é😀\\\"\n]{0,8}";
    let finite = any::<f64>().prop_filter("finite", |f| f.is_finite() && f.abs() < 1e300);
    (
        (text, any::<i64>(), prop::sample::select(vec!["celsius", "fahrenheit"])),
        (finite.clone(), finite, prop::option::of(prop::option::of(text))),
        (prop::option::of(prop::collection::vec(text, 0..3)), prop::option::of(any::<bool>())),
        any::<u64>(),
    )
        .prop_map(|((name, count, unit), (lat, lon, label), (tags, ok), order)| {
            let mut loc = vec![("lat", json!(lat)), ("lon", json!(lon))];
            if let Some(label) = label {
                loc.push(("label", json!(label)));
            }
            let mut fields = vec![("name", json!(name)), ("count", json!(count)), ("unit", json!(unit))];
            fields.push(("loc", Value::Object(shuffle(loc, order).into_iter().map(|(k, v)| (k.to_string(), v)).collect())));
            if let Some(tags) = tags {
                fields.push(("tags", json!(tags)));
            }
            if let Some(ok) = ok {
                fields.push(("ok", json!(ok)));
            }
            Value::Object(shuffle(fields, order >> 8).into_iter().map(|(k, v)| (k.to_string(), v)).collect())
        })
}

fn shuffle<T>(mut v: Vec<T>, seed: u64) -> Vec<T> {
    let mut rng = Rng::new(seed);
    for i in (1..v.len()).rev() {
        v.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    v
}

fn weather_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "count": {"type": "integer"},
            "unit": {"enum": ["celsius", "fahrenheit"]},
            "loc": {
                "type": "object",
                "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}, "label": {"type": ["string", "null"]}},
                "required": ["lat", "lon"],
                "additionalProperties": false
            },
            "tags": {"type": "array", "items": {"type": "string"}},
            "ok": {"type": "boolean"}
        },
        "required": ["name", "count", "unit", "loc"],
        "additionalProperties": false
    })
}

/// Median time of one `mask` call after `prefix` (text pushed through tokens of the real vocab).
fn time_mask(schema: Option<Value>, prefix: &str) -> f64 {
    let t = tokenizer();
    let mut c = JsonConstraint::new(t.token_bytes_table(), t.eos_id(), None, schema);
    for id in t.encode(prefix) {
        c.advance(id);
    }
    assert!(c.is_active(), "{prefix} was accepted");
    let mut logits = vec![0.0f32; t.vocab_size()];
    c.mask(&mut logits); // warm
    let mut times: Vec<f64> = (0..9)
        .map(|_| {
            logits.fill(0.0);
            let t0 = Instant::now();
            c.mask(&mut logits);
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let allowed = logits.iter().filter(|x| x.is_finite()).count();
    println!("mask after {prefix:?} (schema: {}): {:.2} ms, {allowed} tokens allowed", if c.grammar().schema().is_any() { "no" } else { "yes" }, times[4]);
    assert!(allowed > 0);
    times[4]
}

#[test]
fn mask_time_on_the_real_vocab() {
    let t = tokenizer();
    let t0 = Instant::now();
    let _ = JsonConstraint::new(t.token_bytes_table(), t.eos_id(), None, None);
    println!("first constraint (vocab index build) {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
    let t0 = Instant::now();
    let _ = JsonConstraint::new(t.token_bytes_table(), t.eos_id(), None, None);
    println!("next constraint {:.3} ms", t0.elapsed().as_secs_f64() * 1e3);
    let mut worst: f64 = 0.0;
    for (schema, prefix) in [
        (None, ""),
        (None, "{\"a\": [1, 2, {\"text\": \"Hello wor"),
        (None, "[\"abc"),
        (None, "{\"a\": 12"),
        (None, "{\"a\": {\"b\": "),
        (None, "[\"abc\\u00"),
        (None, "[\"abc\\"),
        (Some(weather_schema()), ""),
        (Some(weather_schema()), "{\"name\": \"Par"),
        (Some(weather_schema()), "{\"name\": \"Paris\", "),
        (Some(weather_schema()), "{\"name\": \"Paris\", \"unit\": \"c"),
    ] {
        worst = worst.max(time_mask(schema, prefix));
    }
    println!("slowest mask: {worst:.2} ms (target < 20 ms)");
}

/// Whether a token moves toward closing the value: it closes a string or container.
fn progress_table(vocab: &[Box<[u8]>]) -> Vec<bool> {
    vocab.iter().map(|b| b.iter().any(|&c| matches!(c, b'"' | b'}' | b']'))).collect()
}

struct GenResult {
    text: String,
    finished: bool,
}

/// A random "sampler": random logits, mask, then usually the argmax, sometimes a random allowed
/// token. To finish within the budget, on a growing share of the steps (30% at the start, 100%
/// at the budget) the allowed tokens that close a string or container (and EOS) get +1000, so
/// the argmax is one of them when any is allowed.
fn generate(c: &mut JsonConstraint, rng: &mut Rng, budget: usize, progress: &[bool], eos: u32) -> GenResult {
    let t = tokenizer();
    let vocab = t.token_bytes_table();
    let mut logits = vec![0.0f32; t.vocab_size()];
    let mut bytes = Vec::new();
    for step in 0..budget {
        for x in logits.iter_mut() {
            *x = rng.next_f64() as f32;
        }
        c.mask(&mut logits);
        let allowed: Vec<u32> = (0..logits.len() as u32).filter(|&i| logits[i as usize].is_finite()).collect();
        assert!(!allowed.is_empty(), "mask left no token after {:?}", String::from_utf8_lossy(&bytes));
        let token = if rng.next_f64() < 0.1 {
            allowed[(rng.next_u64() % allowed.len() as u64) as usize]
        } else {
            if rng.next_f64() < 0.3 + 0.7 * step as f64 / budget as f64 {
                for &i in &allowed {
                    if progress[i as usize] || i == eos {
                        logits[i as usize] += 1000.0;
                    }
                }
            }
            let mut best = allowed[0];
            for &i in &allowed {
                if logits[i as usize] > logits[best as usize] {
                    best = i;
                }
            }
            best
        };
        c.advance(token);
        if token == eos {
            return GenResult { text: String::from_utf8(bytes).expect("valid UTF-8"), finished: true };
        }
        assert!(!looks_special(&vocab[token as usize]), "special token {token} inside the JSON");
        bytes.extend_from_slice(&vocab[token as usize]);
    }
    GenResult { text: String::from_utf8_lossy(&bytes).into_owned(), finished: false }
}

fn run_generations(schema: Option<Value>, thinking: bool, seed: u64) {
    let t = tokenizer();
    let vocab = t.token_bytes_table();
    let progress = progress_table(&vocab);
    let eos = t.eos_id();
    let mut rng = Rng::new(seed);
    let (runs, budget) = (30, 200);
    let mut finished = 0;
    let t0 = Instant::now();
    for run in 0..runs {
        let start_after = thinking.then(think_end);
        let mut c = JsonConstraint::new(Arc::clone(&vocab), eos, start_after, schema.clone());
        if thinking {
            // The reasoning is not constrained: the mask leaves the logits alone until `</think>`,
            // except that the turn may not end (EOS) before the JSON.
            for id in t.encode("Let me think about {this} \"carefully\"") {
                let mut logits = vec![0.5f32; t.vocab_size()];
                c.mask(&mut logits);
                assert!(logits.iter().enumerate().all(|(i, &x)| if i == eos as usize { x == f32::NEG_INFINITY } else { x == 0.5 }));
                c.advance(id);
            }
            c.advance(think_end());
        }
        let r = generate(&mut c, &mut rng, budget, &progress, eos);
        if r.finished {
            finished += 1;
            let v: Value = serde_json::from_str(&r.text).unwrap_or_else(|e| panic!("run {run}: {:?}: {e}", r.text));
            if let Some(s) = &schema {
                validate(&v, s).unwrap_or_else(|e| panic!("run {run}: {:?}: {e}", r.text));
            }
            if run < 3 {
                println!("run {run}: {}", r.text);
            }
        } else {
            assert!(!c.is_complete() || c.grammar().depth() == 0, "run {run}: complete but EOS not taken");
            println!("run {run}: not finished within {budget} tokens: {:?}", r.text);
        }
    }
    println!(
        "schema: {}, thinking: {thinking}: {finished}/{runs} finished, {:.1} s",
        schema.is_some(),
        t0.elapsed().as_secs_f64()
    );
    assert!(finished * 10 >= runs * 9, "only {finished}/{runs} finished");
}

#[test]
fn random_sampler_plain_json() {
    run_generations(None, false, 1);
}

#[test]
fn random_sampler_plain_json_after_thinking() {
    run_generations(None, true, 2);
}

#[test]
fn random_sampler_with_schema() {
    run_generations(Some(weather_schema()), false, 3);
}

#[test]
fn random_sampler_with_schema_after_thinking() {
    run_generations(Some(weather_schema()), true, 4);
}

#[test]
fn forced_text_goes_through_the_real_tokens() {
    // Text the model would write, tokenised by the real tokenizer, is allowed token by token.
    let t = tokenizer();
    let schema = weather_schema();
    let text = r#"{"name": "Paris \u00e9t\u00e9 😀", "count": -12, "unit": "fahrenheit", "loc": {"lat": 48.85, "lon": 2.35e0, "label": null}, "tags": ["a", "b"], "ok": true}"#;
    validate(&serde_json::from_str(text).unwrap(), &schema).unwrap();
    let mut c = JsonConstraint::new(t.token_bytes_table(), t.eos_id(), None, Some(schema));
    let mut logits = vec![0.0f32; t.vocab_size()];
    for id in t.encode(text) {
        logits.fill(0.0);
        c.mask(&mut logits);
        assert!(logits[id as usize].is_finite(), "token {id} {:?} masked", t.decode(&[id]));
        c.advance(id);
    }
    assert!(c.is_complete());
    logits.fill(0.0);
    c.mask(&mut logits);
    let allowed: Vec<usize> = (0..logits.len()).filter(|&i| logits[i].is_finite()).collect();
    assert_eq!(allowed, vec![t.eos_id() as usize]);
    // The same text with the key misspelt is refused at the key.
    let g = JsonGrammar::with_schema(Arc::new(JsonSchema::compile(&weather_schema())));
    assert!(!g.accepts(br#"{"nam""#));
}

/// `response_format: json_object`: any JSON object (nested plain JSON inside).
#[test]
fn random_sampler_json_object() {
    run_generations(Some(json!({"type": "object"})), false, 5);
    run_generations(Some(json!({"type": ["object", "array"]})), true, 6);
}
