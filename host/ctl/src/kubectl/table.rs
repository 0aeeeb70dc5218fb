//! Plain-text output of `kubectl danm`: column-aligned tables (kubectl's style: upper-case headers, two spaces
//! between columns, no trailing blanks) and usage bars.

/// Renders `rows` under `headers`, every column as wide as its widest cell (counted in characters).
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            } else {
                widths.push(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i] - cell.chars().count();
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A usage bar of `width` cells: `[###.......]`, `#` for the used share (rounded up, so any use shows), `.` for the
/// free share. A pool of size 0 is all `-`.
pub fn bar(used: u64, size: u64, width: usize) -> String {
    if size == 0 {
        return format!("[{}]", "-".repeat(width));
    }
    let used = used.min(size);
    let filled = (u128::from(used) * width as u128).div_ceil(u128::from(size)) as usize;
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// `used/size` with the bar, as the networks table shows one family: `3/61 [#.........]`.
pub fn usage_cell(used: u64, size: u64) -> String {
    format!("{used}/{size} {}", bar(used, size, 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell_and_lines_have_no_trailing_blanks() {
        let rows = vec![
            vec!["DanmNet".to_owned(), "demo/external".to_owned(), "x".to_owned()],
            vec!["ClusterNetwork".to_owned(), "shared".to_owned(), String::new()],
        ];
        let text = render(&["KIND", "NAME", "NOTE"], &rows);
        assert_eq!(
            text,
            "KIND            NAME           NOTE\n\
             DanmNet         demo/external  x\n\
             ClusterNetwork  shared\n"
        );
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let rows = vec![vec!["é".to_owned(), "b".to_owned()]];
        assert_eq!(render(&["A", "B"], &rows), "A  B\né  b\n");
    }

    #[test]
    fn bars_round_any_use_up_and_stay_within_their_width() {
        assert_eq!(bar(0, 61, 10), "[..........]");
        assert_eq!(bar(1, 61, 10), "[#.........]");
        assert_eq!(bar(30, 60, 10), "[#####.....]");
        assert_eq!(bar(61, 61, 10), "[##########]");
        assert_eq!(bar(70, 61, 10), "[##########]");
        assert_eq!(bar(0, 0, 4), "[----]");
        assert_eq!(usage_cell(3, 61), "3/61 [#.........]");
    }
}
