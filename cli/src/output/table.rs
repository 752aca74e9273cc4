//! Column alignment as Docker's tables do it: Go's `tabwriter` with a
//! minimum cell width of 10 and 3 spaces of padding. Cells are separated by
//! `\t`; the last cell of a line is written as is.

/// Minimum width of a column, padding included (Docker's `minwidth`).
const MIN_WIDTH: usize = 10;
/// Spaces added after the widest cell of a column (Docker's `padding`).
const PADDING: usize = 3;

/// Aligns tab-separated `text` into columns; lines keep their order.
pub fn align(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for cells in &lines {
        // The last cell is not tab-terminated and does not size its column.
        for (i, cell) in cells.iter().take(cells.len().saturating_sub(1)).enumerate() {
            let w = (cell.chars().count() + PADDING).max(MIN_WIDTH);
            if widths.len() <= i {
                widths.push(w);
            } else if widths[i] < w {
                widths[i] = w;
            }
        }
    }
    let mut out = String::with_capacity(text.len() * 2);
    for cells in &lines {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_like_go_tabwriter() {
        let got = align("ID\tNAME\tDRIVER\nabcdef123456\tweb\toverlay\n");
        assert_eq!(
            got,
            "ID             NAME      DRIVER\n\
             abcdef123456   web       overlay\n"
        );
    }

    #[test]
    fn empty_cells_keep_their_column() {
        let got = align("A\tB\tC\nx\t\tz\n");
        assert_eq!(got, "A         B         C\nx                   z\n");
    }
}
