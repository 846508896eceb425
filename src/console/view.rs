//! How the workbench looks: the page shell (header, navigation, style sheet) every screen
//! shares, and the small pieces screens are built of. Everything is in the binary; no
//! script, font or style is fetched from anywhere.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::Screen;

/// The style sheet, inlined into every page.
const STYLE: &str = r#"
:root { --ink:#1d2433; --muted:#5b6478; --line:#dde1e8; --bg:#f6f7f9; --card:#fff;
  --accent:#2456c7; --allow:#1f7a4d; --deny:#b3261e; --warn:#8a5a00; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--ink); background:var(--bg); }
header { display:flex; align-items:center; gap:1.5rem; padding:.6rem 1.2rem; background:#1d2433; color:#fff; }
header .brand { font-weight:600; letter-spacing:.02em; }
header .rev { color:#b8c1d6; font-family:ui-monospace, monospace; font-size:12px; }
header .who { margin-left:auto; color:#dfe5f2; }
header form { margin:0; }
header button { background:none; border:1px solid #59627a; color:#dfe5f2; border-radius:4px; padding:.15rem .6rem; cursor:pointer; }
nav { display:flex; gap:.2rem; padding:0 1.2rem; background:#fff; border-bottom:1px solid var(--line); }
nav a { padding:.6rem .8rem; color:var(--muted); text-decoration:none; border-bottom:2px solid transparent; }
nav a.on { color:var(--ink); border-bottom-color:var(--accent); font-weight:600; }
main { padding:1.2rem; max-width:1280px; }
h1 { font-size:20px; margin:.2rem 0 1rem; }
h2 { font-size:16px; margin:1.4rem 0 .6rem; }
.card { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:1rem; margin-bottom:1rem; }
.stats { display:flex; gap:1rem; flex-wrap:wrap; }
.stat { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:.7rem 1rem; min-width:9rem; }
.stat b { display:block; font-size:22px; }
.stat span { color:var(--muted); font-size:12px; }
table { border-collapse:collapse; width:100%; background:var(--card); }
th, td { text-align:left; padding:.4rem .6rem; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:12px; color:var(--muted); font-weight:600; background:#fafbfc; }
code, pre, .mono { font-family:ui-monospace, SFMono-Regular, Menlo, monospace; font-size:12.5px; }
pre { background:#f3f5f8; border:1px solid var(--line); padding:.6rem; border-radius:4px; overflow:auto; white-space:pre-wrap; }
.allow { color:var(--allow); font-weight:600; }
.deny { color:var(--deny); font-weight:600; }
.warn { color:var(--warn); }
.muted { color:var(--muted); }
.pill { display:inline-block; padding:0 .45rem; border-radius:9px; background:#eef1f6; font-size:12px; margin:0 .2rem .2rem 0; }
.permit { background:#e4f3ea; color:var(--allow); } .forbid { background:#fbe9e7; color:var(--deny); }
form.grid { display:grid; grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr)); gap:.6rem 1rem; align-items:end; }
label { display:block; font-size:12px; color:var(--muted); }
input, select, textarea { width:100%; font:inherit; padding:.35rem .45rem; border:1px solid #c6ccd7; border-radius:4px; background:#fff; }
textarea { font-family:ui-monospace, monospace; font-size:12.5px; }
button.go { background:var(--accent); color:#fff; border:0; border-radius:4px; padding:.45rem 1rem; font:inherit; cursor:pointer; }
.error { background:#fbe9e7; border:1px solid #f1b8b0; color:#7a1b14; padding:.6rem .8rem; border-radius:4px; margin-bottom:1rem; }
.note { background:#fff8e1; border:1px solid #f0d48a; padding:.6rem .8rem; border-radius:4px; margin-bottom:1rem; }
.pager { margin:.6rem 0; display:flex; gap:1rem; align-items:center; }
a { color:var(--accent); }
svg text { font-size:11px; fill:var(--muted); }
.legend span { margin-right:1rem; font-size:12px; }
.legend i { display:inline-block; width:10px; height:10px; margin-right:.3rem; border-radius:2px; }
"#;

/// What every page's shell shows besides the screen itself.
pub(crate) struct Shell<'a> {
    /// The screen shown (its tab is marked).
    pub(crate) screen: Screen,
    /// The screens this person's policies let them use.
    pub(crate) allowed: &'a [Screen],
    /// Who is signed in.
    pub(crate) who: &'a str,
    /// The live revision.
    pub(crate) revision: &'a str,
    /// The session's CSRF token (for the sign-out form).
    pub(crate) csrf: &'a str,
    /// Whether this is development mode (no sign-in).
    pub(crate) dev_mode: bool,
}

/// A whole page: the shell around `body`.
pub(crate) fn page(shell: &Shell<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (shell.screen.title()) " · Arbiter workbench" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    span.brand { "Arbiter workbench" }
                    span.rev title="live policy revision" { "revision " (shell.revision) }
                    span.who {
                        (shell.who)
                        @if shell.dev_mode { " " span.pill.warn { "development mode" } }
                    }
                    @if !shell.dev_mode {
                        form method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(shell.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                nav {
                    @for s in shell.allowed {
                        a href=(s.path()) class=@if *s == shell.screen { "on" } { (s.title()) }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page outside the shell (sign-in errors, refusals before a session exists).
pub(crate) fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · Arbiter workbench" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header { span.brand { "Arbiter workbench" } }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// An error box.
pub(crate) fn error(message: &str) -> Markup {
    html! { div.error role="alert" { (message) } }
}

/// `allow` or `deny`, coloured.
pub(crate) fn decision(allowed: bool) -> Markup {
    html! {
        @if allowed { span.allow { "allow" } } @else { span.deny { "deny" } }
    }
}

/// A policy's effect as a pill.
pub(crate) fn effect(effect: &str) -> Markup {
    html! { span class={ "pill " (effect) } { (effect) } }
}

/// The hidden CSRF field of a form.
pub(crate) fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// Previous / next links for a list shown `per_page` at a time from `offset`.
pub(crate) fn pager(base: &str, offset: usize, per_page: usize, total: usize) -> Markup {
    let sep = if base.contains('?') { '&' } else { '?' };
    html! {
        div.pager {
            @if offset > 0 {
                a href={ (base) (sep) "offset=" (offset.saturating_sub(per_page)) } { "← previous" }
            }
            span.muted {
                @if total == 0 { "none" }
                @else { (offset + 1) "–" ((offset + per_page).min(total)) " of " (total) }
            }
            @if offset + per_page < total {
                a href={ (base) (sep) "offset=" (offset + per_page) } { "next →" }
            }
        }
    }
}

/// Colours of the activity chart, by reason (in `activity::REASONS` order).
pub(crate) const REASON_COLOURS: [&str; 8] = [
    "#3f9d6b", "#c0392b", "#e67e22", "#8e44ad", "#d35400", "#7f8c8d", "#95a5a6", "#2c3e50",
];

/// A stacked bar chart as SVG: one bar per interval, stacked by series (`series[i][t]`).
pub(crate) fn stacked_bars(
    series: &[(&str, &str, Vec<f64>)],
    width: u32,
    height: u32,
    unit: &str,
) -> Markup {
    let points = series.first().map_or(0, |s| s.2.len());
    let totals: Vec<f64> = (0..points)
        .map(|t| series.iter().map(|s| s.2[t]).sum())
        .collect();
    let max = totals.iter().copied().fold(0.0, f64::max).max(1.0);
    let (left, bottom) = (40.0, 18.0);
    let plot_w = f64::from(width) - left;
    let plot_h = f64::from(height) - bottom;
    let bar_w = if points == 0 {
        0.0
    } else {
        plot_w / points as f64
    };
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(width) height=(height) role="img"
            aria-label={ "chart of " (unit) } {
            line x1=(left) y1="0" x2=(left) y2=(plot_h) stroke="#c6ccd7" {}
            line x1=(left) y1=(plot_h) x2=(width) y2=(plot_h) stroke="#c6ccd7" {}
            text x="2" y="10" { (format!("{max:.1}")) }
            text x="2" y=(plot_h) { "0" }
            text x=(left) y=(f64::from(height) - 4.0) { "−1 h" }
            text x=(f64::from(width) - 30.0) y=(f64::from(height) - 4.0) { "now" }
            @for t in 0..points {
                @let mut y = plot_h;
                @for (name, colour, values) in series {
                    @let h = values[t] / max * plot_h;
                    @if h > 0.0 {
                        @let top = { y -= h; y };
                        rect x=(format!("{:.2}", left + t as f64 * bar_w)) y=(format!("{top:.2}"))
                            width=(format!("{:.2}", (bar_w - 0.5).max(0.5))) height=(format!("{h:.2}"))
                            fill=(colour) {
                            title { (name) ": " (format!("{:.2}", values[t])) " " (unit) }
                        }
                    }
                }
            }
        }
        div.legend {
            @for (name, colour, _) in series {
                span { i style={ "background:" (colour) } {} (name) }
            }
        }
    }
}
