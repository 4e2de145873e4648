//! A small SVG writer for the result plots: a grouped bar chart (% of roofline per case, one bar
//! per implementation, a 100% line) and a line chart (log-scale x). Hand-written so the harness
//! needs no plotting crate; every text is XML-escaped so case names cannot break the file.

use std::fmt::Write as _;

/// `&`, `<`, `>`, `"`, `'` as entities.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

const PALETTE: [&str; 8] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

fn open(w: f64, h: f64, title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect x="0" y="0" width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(s, r#"<text x="{}" y="18" text-anchor="middle" font-size="14">{}</text>"#, w / 2.0, escape(title));
    s
}

fn text(s: &mut String, x: f64, y: f64, anchor: &str, extra: &str, t: &str) {
    let _ = writeln!(s, r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}"{extra}>{}</text>"#, escape(t));
}

fn legend(s: &mut String, x: f64, y: f64, names: &[String]) {
    for (i, n) in names.iter().enumerate() {
        let yy = y + 16.0 * i as f64;
        let _ = writeln!(s, r#"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="{}"/>"#, yy - 9.0, PALETTE[i % PALETTE.len()]);
        text(s, x + 14.0, yy, "start", "", n);
    }
}

/// Grouped bars: `groups[g]` is a case, `series[i]` an implementation, `values[i][g]` its
/// percentage (None: not measured). A dashed line marks 100%.
pub fn grouped_bars(title: &str, y_label: &str, groups: &[String], series: &[String], values: &[Vec<Option<f64>>]) -> String {
    let (left, right, top, bottom) = (60.0, 150.0, 30.0, 110.0);
    let group_w = 18.0 * series.len().max(1) as f64 + 14.0;
    let plot_w = (group_w * groups.len().max(1) as f64).max(200.0);
    let plot_h = 260.0;
    let (w, h) = (left + plot_w + right, top + plot_h + bottom);
    let vmax = values.iter().flatten().flatten().cloned().fold(100.0_f64, f64::max) * 1.1;
    let y = |v: f64| top + plot_h - plot_h * v / vmax;
    let mut s = open(w, h, title);
    // axes and grid every 20 %
    let mut tick = 0.0;
    while tick <= vmax {
        let _ = writeln!(s, r##"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#ddd"/>"##, y(tick), left + plot_w, y(tick));
        text(&mut s, left - 4.0, y(tick) + 4.0, "end", "", &format!("{tick:.0}"));
        tick += 20.0;
    }
    let _ = writeln!(s, r#"<line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="black"/>"#, top + plot_h);
    let _ = writeln!(s, r#"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/>"#, top + plot_h, left + plot_w, top + plot_h);
    let _ = writeln!(s, r#"<line x1="{left}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="red" stroke-dasharray="6,3"/>"#, y(100.0), left + plot_w);
    text(&mut s, left + plot_w + 4.0, y(100.0) + 4.0, "start", r#" fill="red""#, "100%");
    text(&mut s, 14.0, top + plot_h / 2.0, "middle", &format!(r#" transform="rotate(-90 14 {:.1})""#, top + plot_h / 2.0), y_label);
    for (g, name) in groups.iter().enumerate() {
        let x0 = left + 7.0 + g as f64 * group_w;
        for (i, vals) in values.iter().enumerate() {
            if let Some(Some(v)) = vals.get(g) {
                let _ = writeln!(
                    s,
                    r#"<rect x="{:.1}" y="{:.1}" width="16" height="{:.1}" fill="{}"><title>{}: {v:.1}</title></rect>"#,
                    x0 + 18.0 * i as f64,
                    y(*v),
                    top + plot_h - y(*v),
                    PALETTE[i % PALETTE.len()],
                    escape(&format!("{} {}", name, series.get(i).map(String::as_str).unwrap_or(""))),
                );
            }
        }
        let cx = x0 + group_w / 2.0 - 7.0;
        let ly = top + plot_h + 12.0;
        text(&mut s, cx, ly, "end", &format!(r#" transform="rotate(-45 {cx:.1} {ly:.1})""#), name);
    }
    legend(&mut s, left + plot_w + 10.0, top + 40.0, series);
    s.push_str("</svg>\n");
    s
}

/// One line of a [`line_chart`]: `(x, y)` points, x > 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Lines over a log2 x axis (batch sizes, prompt lengths) and a linear y axis from 0.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let (left, right, top, bottom) = (60.0, 150.0, 30.0, 50.0);
    let (plot_w, plot_h) = (420.0, 260.0);
    let (w, h) = (left + plot_w + right, top + plot_h + bottom);
    let pts = || series.iter().flat_map(|s| s.points.iter()).filter(|p| p.0 > 0.0 && p.1.is_finite());
    let xmin = pts().map(|p| p.0.log2()).fold(f64::INFINITY, f64::min);
    let xmax = pts().map(|p| p.0.log2()).fold(f64::NEG_INFINITY, f64::max);
    let (xmin, xmax) = if xmin.is_finite() { (xmin, if xmax > xmin { xmax } else { xmin + 1.0 }) } else { (0.0, 1.0) };
    let ymax = pts().map(|p| p.1).fold(0.0_f64, f64::max).max(1e-12) * 1.1;
    let x = |v: f64| left + plot_w * (v.log2() - xmin) / (xmax - xmin);
    let y = |v: f64| top + plot_h - plot_h * v / ymax;
    let mut s = open(w, h, title);
    let _ = writeln!(s, r#"<line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="black"/>"#, top + plot_h);
    let _ = writeln!(s, r#"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="black"/>"#, top + plot_h, left + plot_w, top + plot_h);
    for i in 0..=4 {
        let v = ymax * i as f64 / 4.0;
        text(&mut s, left - 4.0, y(v) + 4.0, "end", "", &format!("{v:.3}"));
    }
    let mut xs: Vec<f64> = pts().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    for xv in xs {
        text(&mut s, x(xv), top + plot_h + 14.0, "middle", "", &crate::scenario::size_str(xv.round() as usize));
    }
    text(&mut s, left + plot_w / 2.0, top + plot_h + 36.0, "middle", "", x_label);
    text(&mut s, 14.0, top + plot_h / 2.0, "middle", &format!(r#" transform="rotate(-90 14 {:.1})""#, top + plot_h / 2.0), y_label);
    for (i, se) in series.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        let p: Vec<String> = se.points.iter().filter(|p| p.0 > 0.0 && p.1.is_finite()).map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1))).collect();
        let _ = writeln!(s, r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"/>"#, p.join(" "));
        for q in se.points.iter().filter(|p| p.0 > 0.0 && p.1.is_finite()) {
            let _ = writeln!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"/>"#, x(q.0), y(q.1));
        }
    }
    let names: Vec<String> = series.iter().map(|s| s.name.clone()).collect();
    legend(&mut s, left + plot_w + 10.0, top + 20.0, &names);
    s.push_str("</svg>\n");
    s
}

/// A minimal well-formedness check: tags balance and nest, attribute quotes close, and `&`
/// starts one of the five entities. Enough to catch a broken writer; not a full XML parser.
pub fn check_well_formed(doc: &str) -> Result<(), String> {
    let mut stack: Vec<String> = Vec::new();
    let b = doc.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'<' => {
                let end = doc[i..].find('>').ok_or("unclosed '<'")? + i;
                let tag = &doc[i + 1..end];
                if !tag.matches('"').count().is_multiple_of(2) {
                    return Err(format!("odd quotes in <{tag}>"));
                }
                if let Some(name) = tag.strip_prefix('/') {
                    let open = stack.pop().ok_or_else(|| format!("</{name}> without an open tag"))?;
                    if open != name.trim() {
                        return Err(format!("</{name}> closes <{open}>"));
                    }
                } else if !tag.ends_with('/') && !tag.starts_with('?') && !tag.starts_with('!') {
                    let name = tag.split_whitespace().next().ok_or("empty tag")?;
                    stack.push(name.to_string());
                }
                i = end + 1;
            }
            b'&' => {
                let rest = &doc[i..];
                if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].iter().any(|e| rest.starts_with(e)) {
                    return Err(format!("bare '&' at byte {i}"));
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    match stack.pop() {
        Some(t) => Err(format!("<{t}> never closed")),
        None => Ok(()),
    }
}
