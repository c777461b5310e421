//! Box-drawn tables as PM2 prints them, with widths computed on visible text (ANSI codes ignored).

/// Visible width of `s`: ANSI escape sequences count for nothing, every other char for one column.
pub fn visible_width(s: &str) -> usize {
    let mut w = 0;
    let mut esc = false;
    for c in s.chars() {
        if esc {
            if c.is_ascii_alphabetic() {
                esc = false;
            }
        } else if c == '\x1b' {
            esc = true;
        } else {
            w += 1;
        }
    }
    w
}

/// Renders rows under a header as a box-drawn table (`┌─┬─┐`), one space of padding each side.
pub fn render(header: &[String], rows: &[Vec<String>]) -> String {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| visible_width(h)).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            widths[i] = widths[i].max(visible_width(c));
        }
    }
    let line = |l: &str, m: &str, r: &str| {
        let mut s = String::from(l);
        for (i, w) in widths.iter().enumerate() {
            s.push_str(&"─".repeat(w + 2));
            s.push_str(if i + 1 == n { r } else { m });
        }
        s.push('\n');
        s
    };
    let row = |cells: &[String]| {
        let mut s = String::from("│");
        for (i, w) in widths.iter().enumerate() {
            let c = cells.get(i).map(String::as_str).unwrap_or("");
            s.push(' ');
            s.push_str(c);
            s.push_str(&" ".repeat(w - visible_width(c) + 1));
            s.push('│');
        }
        s.push('\n');
        s
    };
    let mut out = line("┌", "┬", "┐");
    out.push_str(&row(header));
    if !rows.is_empty() {
        out.push_str(&line("├", "┼", "┤"));
        for r in rows {
            out.push_str(&row(r));
        }
    }
    out.push_str(&line("└", "┴", "┘"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_on_visible_width() {
        let t = render(&["id".into(), "status".into()], &[vec!["0".into(), "\x1b[32monline\x1b[0m".into()]]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5);
        let w: Vec<usize> = lines.iter().map(|l| visible_width(l)).collect();
        assert!(w.iter().all(|x| *x == w[0]), "{t}");
        assert!(t.contains("│ 0  │ \x1b[32monline\x1b[0m │"));
    }

    #[test]
    fn empty_table_has_header_only() {
        let t = render(&["a".into()], &[]);
        assert_eq!(t.lines().count(), 3);
    }
}
