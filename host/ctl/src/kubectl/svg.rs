//! `kubectl danm networks --svg`: one hand-written SVG of every pool's allocation map — per network and family, a
//! `<rect class="block">` per DanmIpBlock (blocks mode, labelled with its node and use) or a `<rect class="segment">`
//! per fixed-size segment of the bitmap (bitmap mode), coloured by use, with a legend.

use std::fmt::Write as _;

use super::networks::{Cell, PoolMap};

const WIDTH: u32 = 980;
const MARGIN: u32 = 20;
const BLOCK_W: u32 = 180;
const BLOCK_H: u32 = 48;
const SEG: u32 = 22;
const GAP: u32 = 4;

/// Escapes text for an SVG text node or attribute value.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// The use classes of the legend, lowest first: (fill, label).
const SHADES: [(&str, &str); 6] = [
    ("#e0e0e0", "nothing to allocate"),
    ("#e8f5e9", "free"),
    ("#a5d6a7", "under 50 % used"),
    ("#ffcc80", "50 – 90 % used"),
    ("#ef9a9a", "over 90 % used"),
    ("#c62828", "full"),
];

fn shade(c: &Cell) -> usize {
    if c.capacity == 0 {
        return if c.used > 0 { 5 } else { 0 };
    }
    if c.used >= c.capacity {
        return 5;
    }
    if c.used == 0 {
        return 1;
    }
    match c.used as f64 / c.capacity as f64 {
        s if s < 0.5 => 2,
        s if s < 0.9 => 3,
        _ => 4,
    }
}

fn text(out: &mut String, x: u32, y: u32, size: u32, extra: &str, body: &str) {
    let _ = writeln!(
        out,
        r#"<text x="{x}" y="{y}" font-size="{size}"{extra}>{}</text>"#,
        escape(body)
    );
}

/// The whole picture.
pub fn render(maps: &[PoolMap]) -> String {
    let mut body = String::new();
    let mut y = MARGIN;
    text(
        &mut body,
        MARGIN,
        y + 16,
        20,
        r#" font-weight="bold""#,
        "danm pool allocation map",
    );
    y += 34;
    // Legend.
    let mut x = MARGIN;
    for (fill, label) in SHADES {
        let _ = writeln!(
            body,
            r##"<rect class="legend" x="{x}" y="{y}" width="14" height="14" fill="{fill}" stroke="#555"/>"##
        );
        text(&mut body, x + 18, y + 12, 12, "", label);
        x += 22 + 7 * label.chars().count() as u32;
    }
    y += 22;
    for line in [
        "blocks mode: one box per claimed DanmIpBlock: its CIDR, the node holding it, addresses used/capacity",
        "bitmap mode: the network's range cut into equal segments, coloured by use (hover a segment for its CIDR and use)",
    ] {
        text(&mut body, MARGIN, y + 12, 12, r##" fill="#444""##, line);
        y += 16;
    }
    y += 14;
    if maps.is_empty() {
        text(&mut body, MARGIN, y + 14, 14, "", "no network with an IPAM pool");
        y += 24;
    }
    for map in maps {
        let title = format!(
            "{} {} — {} mode, {}{}",
            map.network,
            map.family,
            map.mode,
            map.space,
            if map.mode == "blocks" {
                format!(", {} of {} pool blocks claimed", map.cells.len(), map.unit)
            } else {
                format!(
                    ", {} segment{} of {} addresses",
                    map.cells.len(),
                    if map.cells.len() == 1 { "" } else { "s" },
                    map.unit
                )
            }
        );
        text(&mut body, MARGIN, y + 14, 14, r#" font-weight="bold""#, &title);
        y += 22;
        let (w, h, label) = if map.mode == "blocks" {
            (BLOCK_W, BLOCK_H, true)
        } else {
            (SEG, SEG, false)
        };
        let per_row = ((WIDTH - 2 * MARGIN + GAP) / (w + GAP)).max(1);
        if map.cells.is_empty() {
            text(
                &mut body,
                MARGIN,
                y + 12,
                12,
                r##" fill="#444""##,
                "no block claimed yet",
            );
            y += 20;
        }
        for (i, cell) in map.cells.iter().enumerate() {
            let (col, row) = (i as u32 % per_row, i as u32 / per_row);
            let (cx, cy) = (MARGIN + col * (w + GAP), y + row * (h + GAP));
            let class = if label { "block" } else { "segment" };
            let node = cell.node.as_deref().unwrap_or_default();
            let _ = writeln!(
                body,
                r##"<rect class="{class}" x="{cx}" y="{cy}" width="{w}" height="{h}" rx="3" fill="{}" stroke="#555" data-cidr="{}" data-node="{}" data-used="{}" data-capacity="{}"><title>{}</title></rect>"##,
                SHADES[shade(cell)].0,
                escape(&cell.cidr),
                escape(node),
                cell.used,
                cell.capacity,
                escape(&format!(
                    "{}{}: {}/{} used",
                    cell.cidr,
                    if node.is_empty() {
                        String::new()
                    } else {
                        format!(" on {node}")
                    },
                    cell.used,
                    cell.capacity
                )),
            );
            if label {
                let ink = if shade(cell) == 5 { r##" fill="#fff""## } else { "" };
                text(&mut body, cx + 6, cy + 14, 11, ink, &cell.cidr);
                text(&mut body, cx + 6, cy + 28, 11, ink, node);
                text(
                    &mut body,
                    cx + 6,
                    cy + 42,
                    11,
                    ink,
                    &format!("{}/{} used", cell.used, cell.capacity),
                );
            }
        }
        let rows = (map.cells.len() as u32).div_ceil(per_row);
        y += rows * (h + GAP) + 16;
    }
    let height = y + MARGIN;
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" \
         height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\">\n<rect x=\"0\" y=\"0\" \
         width=\"{WIDTH}\" height=\"{height}\" fill=\"#fff\"/>\n{body}</svg>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(cidr: &str, node: Option<&str>, used: u64, capacity: u64) -> Cell {
        Cell {
            cidr: cidr.into(),
            node: node.map(str::to_owned),
            used,
            capacity,
        }
    }

    #[test]
    fn names_are_escaped_in_text_and_attributes() {
        assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&apos;");
        let svg = render(&[PoolMap {
            network: "DanmNet x/<evil>&".into(),
            family: "IPv4".into(),
            mode: "blocks".into(),
            space: "10.0.0.0/24".into(),
            unit: 4,
            cells: vec![cell("10.0.0.0/26", Some("node\"1<"), 1, 63)],
        }]);
        assert!(svg.contains("DanmNet x/&lt;evil&gt;&amp;"), "{svg}");
        assert!(svg.contains(r#"data-node="node&quot;1&lt;""#), "{svg}");
        assert!(!svg.contains("<evil>"));
    }

    #[test]
    fn colours_follow_the_share_used() {
        assert_eq!(shade(&cell("c", None, 0, 0)), 0);
        assert_eq!(shade(&cell("c", None, 0, 63)), 1);
        assert_eq!(shade(&cell("c", None, 10, 63)), 2);
        assert_eq!(shade(&cell("c", None, 40, 63)), 3);
        assert_eq!(shade(&cell("c", None, 60, 63)), 4);
        assert_eq!(shade(&cell("c", None, 63, 63)), 5);
    }

    #[test]
    fn every_cell_is_one_rect_of_its_kind() {
        let svg = render(&[
            PoolMap {
                network: "DanmNet d/a".into(),
                family: "IPv4".into(),
                mode: "blocks".into(),
                space: "10.0.0.0/24".into(),
                unit: 4,
                cells: vec![
                    cell("10.0.0.0/26", Some("w1"), 1, 63),
                    cell("10.0.0.64/26", Some("w2"), 0, 64),
                ],
            },
            PoolMap {
                network: "DanmNet d/b".into(),
                family: "IPv4".into(),
                mode: "bitmap".into(),
                space: "10.1.0.0/24".into(),
                unit: 64,
                cells: (0..4)
                    .map(|i| cell(&format!("10.1.0.{}/26", i * 64), None, 0, 63))
                    .collect(),
            },
        ]);
        assert_eq!(svg.matches(r#"<rect class="block""#).count(), 2);
        assert_eq!(svg.matches(r#"<rect class="segment""#).count(), 4);
        assert_eq!(svg.matches(r#"<rect class="legend""#).count(), SHADES.len());
        assert!(
            svg.contains("DanmNet d/a IPv4 — blocks mode, 10.0.0.0/24, 2 of 4 pool blocks claimed"),
            "{svg}"
        );
        assert!(
            svg.contains("DanmNet d/b IPv4 — bitmap mode, 10.1.0.0/24, 4 segments of 64 addresses"),
            "{svg}"
        );
    }
}
