//! A tiny document model rendered to Markdown and to self-contained HTML,
//! so that both formats carry exactly the same content.

use std::fmt::Write as _;

/// One element of a report.
#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    /// A heading of level 1..=3.
    Heading(u8, String),
    /// A paragraph of plain text (inline `code` with backticks allowed).
    Para(String),
    /// A bulleted list.
    List(Vec<String>),
    /// A table with a header row.
    Table(Vec<String>, Vec<Vec<String>>),
    /// A figure: file stem under `figures/`, caption, and the SVG text to
    /// inline in HTML.
    Figure {
        /// File stem under `figures/` (both .svg and .png exist).
        stem: String,
        /// Caption.
        caption: String,
        /// The SVG document.
        svg: String,
    },
}

/// Renders `blocks` as Markdown; figures link to `figures/STEM.png`.
pub fn markdown(blocks: &[Block]) -> String {
    let mut s = String::new();
    for b in blocks {
        match b {
            Block::Heading(level, text) => {
                let _ = writeln!(s, "{} {text}\n", "#".repeat(*level as usize));
            }
            Block::Para(text) => {
                let _ = writeln!(s, "{text}\n");
            }
            Block::List(items) => {
                items.iter().for_each(|i| {
                    let _ = writeln!(s, "- {i}");
                });
                s.push('\n');
            }
            Block::Table(header, rows) => md_table(&mut s, header, rows),
            Block::Figure { stem, caption, .. } => {
                let _ = writeln!(s, "![{caption}](figures/{stem}.png)\n\n*{caption}*\n");
            }
        }
    }
    s
}

fn md_table(s: &mut String, header: &[String], rows: &[Vec<String>]) {
    let cell = |c: &String| c.replace('|', "\\|");
    let line = |cells: &[String]| {
        format!(
            "| {} |",
            cells.iter().map(cell).collect::<Vec<_>>().join(" | ")
        )
    };
    let _ = writeln!(s, "{}", line(header));
    let _ = writeln!(s, "|{}", "---|".repeat(header.len()));
    for r in rows {
        let _ = writeln!(s, "{}", line(r));
    }
    s.push('\n');
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Escapes text and turns `code` spans into `<code>`.
fn inline(text: &str) -> String {
    escape(text)
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<code>{part}</code>")
            } else {
                part.to_string()
            }
        })
        .collect()
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}\
th{background:#eee}figure{margin:1.5em 0}figure svg{max-width:100%;height:auto}figcaption{font-style:italic}\
code{background:#f4f4f4;padding:0 2px}";

/// Renders `blocks` as one self-contained HTML page (figures inline as SVG).
pub fn html(title: &str, blocks: &[Block]) -> String {
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(title)
    );
    for b in blocks {
        html_block(&mut s, b);
    }
    s.push_str("</body>\n</html>\n");
    s
}

fn html_block(s: &mut String, b: &Block) {
    let _ = match b {
        Block::Heading(level, text) => writeln!(s, "<h{level}>{}</h{level}>", inline(text)),
        Block::Para(text) => writeln!(s, "<p>{}</p>", inline(text)),
        Block::List(items) => {
            let li: String = items
                .iter()
                .map(|i| format!("<li>{}</li>", inline(i)))
                .collect();
            writeln!(s, "<ul>{li}</ul>")
        }
        Block::Table(header, rows) => {
            let th: String = header
                .iter()
                .map(|h| format!("<th>{}</th>", inline(h)))
                .collect();
            let tr: String = rows
                .iter()
                .map(|r| {
                    let td: String = r
                        .iter()
                        .map(|c| format!("<td>{}</td>", inline(c)))
                        .collect();
                    format!("<tr>{td}</tr>\n")
                })
                .collect();
            writeln!(s, "<table>\n<tr>{th}</tr>\n{tr}</table>")
        }
        Block::Figure { caption, svg, .. } => {
            let body = svg.find("<svg").map_or(svg.as_str(), |i| &svg[i..]);
            writeln!(
                s,
                "<figure>\n{body}\n<figcaption>{}</figcaption>\n</figure>",
                inline(caption)
            )
        }
    };
}

/// The headings of a Markdown document (lines starting with '#').
pub fn headings(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(str::to_string)
        .collect()
}
