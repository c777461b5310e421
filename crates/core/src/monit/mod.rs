//! `rpm2 monit` (aliases `dashboard`, `dash`): a full-screen terminal dashboard (ratatui over
//! crossterm), laid out as PM2's: the process list with CPU and memory (left, above the selected
//! app's custom metrics), the selected app's live log lines (right), its details and CPU/memory
//! sparklines (bottom right), a key help footer.
//!
//! Data: one connection polls `list` every second (which also keeps the daemon sampling every
//! second while the dashboard is open); a second one subscribes to `log:out`/`log:err`. Keys:
//! up/down (k/j) select, PgUp/PgDn/Home/End jump, `q`, Esc or Ctrl-C quit. The terminal is restored
//! on every way out (quit, error, panic, SIGTERM/SIGHUP).

use crate::base::fmt::{human_bytes, human_duration, now_ms};
use crate::base::paths::Home;
use crate::client::Client;
use crate::protocol::Pm2Process;
use anyhow::{bail, Context, Result};
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::{cursor, execute, terminal};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, List, ListItem, ListState, Paragraph, Sparkline, Wrap};
use ratatui::{Frame, Terminal, TerminalOptions, Viewport};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const REFRESH: Duration = Duration::from_millis(1000);
const HISTORY: usize = 120;
const LOG_LINES: usize = 500;

/// Set by SIGTERM/SIGHUP (registered in [`with_terminal`]): the dashboard restores the terminal and ends.
static SIGNALLED: std::sync::LazyLock<Arc<AtomicBool>> = std::sync::LazyLock::new(|| Arc::new(AtomicBool::new(false)));

enum Msg {
    List(Vec<Pm2Process>),
    Log { pm_id: u64, err: bool, text: String },
    Error(String),
}

/// Runs the dashboard until the user quits. Fails with a clear message when stdin or stdout is not
/// a terminal (instead of drawing escape codes into a pipe).
pub fn run(home: &Home, client: &dyn Fn() -> Result<Client>) -> Result<i32> {
    use std::io::IsTerminal;
    let ttys = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if !ttys {
        bail!(
            "rpm2 monit needs an interactive terminal (stdin and stdout must be a TTY): use `rpm2 list` or \
             `rpm2 jlist` in scripts, or `rpm2 web` for a JSON API"
        );
    }
    let lister = client()?;
    lister.set_timeout(Some(Duration::from_secs(10)));
    let sub = client()?.subscribe(&["log:out", "log:err"], &[])?;
    let sub_stop = sub.shutdown_handle().ok();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Msg>();

    let poller = {
        let (tx, stop, home) = (tx.clone(), stop.clone(), home.clone());
        std::thread::spawn(move || poll_list(lister, &home, &tx, &stop))
    };
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for (topic, data) in sub {
                let pm_id = data["process"]["pm_id"].as_u64().unwrap_or(u64::MAX);
                let text = data["data"].as_str().unwrap_or("").to_string();
                if tx.send(Msg::Log { pm_id, err: topic == "log:err", text }).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);

    let res = with_terminal(|term| ui_loop(term, &rx));
    stop.store(true, Ordering::SeqCst);
    if let Some(s) = sub_stop {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    let _ = poller.join();
    res.map(|_| 0)
}

fn poll_list(first: Client, home: &Home, tx: &mpsc::Sender<Msg>, stop: &AtomicBool) {
    let mut conn = Some(first);
    loop {
        if conn.is_none() {
            // Reconnect without starting a daemon: the user may have killed it on purpose.
            conn = Client::connect(home).ok();
            if let Some(c) = &conn {
                c.set_timeout(Some(Duration::from_secs(10)));
            }
        }
        let res = match conn.as_mut() {
            Some(c) => c.processes().map_err(|e| format!("{e:#}")),
            None => Err(format!("the rpm2 daemon is not running (home {})", home.root().display())),
        };
        let msg = match res {
            Ok(l) => Msg::List(l),
            Err(e) => {
                conn = None;
                Msg::Error(e)
            }
        };
        if tx.send(msg).is_err() {
            return;
        }
        let until = Instant::now() + REFRESH;
        while Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

type Term = Terminal<CrosstermBackend<std::io::Stdout>>;

/// Puts the terminal in raw mode on the alternate screen, runs `f`, and restores it whatever happens.
fn with_terminal<T>(f: impl FnOnce(&mut Term) -> Result<T>) -> Result<T> {
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            restore();
        }
    }
    // The handlers only store to the flag (signal-hook's safe registration).
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&SIGNALLED));
    }
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        prev(info);
    }));
    terminal::enable_raw_mode().context("cannot put the terminal in raw mode")?;
    let _restore = Restore;
    execute!(std::io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)
        .context("cannot switch to the alternate screen")?;
    let backend = CrosstermBackend::new(std::io::stdout());
    // A terminal that reports no size (a bare pseudo-terminal): draw at 80x24 rather than nothing.
    let size = terminal::size().unwrap_or((0, 0));
    let mut term = if size.0 == 0 || size.1 == 0 {
        Terminal::with_options(backend, TerminalOptions { viewport: Viewport::Fixed(Rect::new(0, 0, 80, 24)) })
    } else {
        Terminal::new(backend)
    }
    .context("cannot set up the terminal")?;
    term.clear().ok();
    f(&mut term)
}

fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(std::io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
}

#[derive(Default)]
struct App {
    procs: Vec<Pm2Process>,
    selected: usize,
    selected_id: Option<u64>,
    cpu_hist: HashMap<u64, VecDeque<u64>>,
    mem_hist: HashMap<u64, VecDeque<u64>>,
    logs: HashMap<u64, VecDeque<(bool, String)>>,
    error: Option<String>,
    list_state: ListState,
    loaded: bool,
}

impl App {
    fn apply(&mut self, m: Msg) {
        match m {
            Msg::List(list) => {
                self.error = None;
                self.loaded = true;
                let ids: Vec<u64> = list.iter().map(|p| u64::from(p.pm_id)).collect();
                for p in &list {
                    let id = u64::from(p.pm_id);
                    let cpu = (p.monit.cpu * 10.0).round().max(0.0) as u64;
                    let mem = p.monit.memory;
                    push_capped(self.cpu_hist.entry(id).or_default(), cpu, HISTORY);
                    push_capped(self.mem_hist.entry(id).or_default(), mem, HISTORY);
                }
                // Forget what belongs to deleted processes.
                self.cpu_hist.retain(|k, _| ids.contains(k));
                self.mem_hist.retain(|k, _| ids.contains(k));
                self.logs.retain(|k, _| ids.contains(k));
                self.procs = list;
                // Keep the selection on the same process across refreshes.
                if let Some(id) = self.selected_id {
                    if let Some(i) = ids.iter().position(|x| *x == id) {
                        self.selected = i;
                    }
                }
                self.select(self.selected as i64);
            }
            Msg::Log { pm_id, err, text } => {
                let q = self.logs.entry(pm_id).or_default();
                for l in text.split('\n') {
                    let l = l.trim_end_matches('\r');
                    if l.is_empty() {
                        continue;
                    }
                    push_capped(q, (err, sanitize(l)), LOG_LINES);
                }
            }
            Msg::Error(e) => self.error = Some(e),
        }
    }

    fn select(&mut self, i: i64) {
        if self.procs.is_empty() {
            self.selected = 0;
            self.selected_id = None;
            self.list_state.select(None);
            return;
        }
        let i = i.clamp(0, self.procs.len() as i64 - 1) as usize;
        self.selected = i;
        self.selected_id = self.procs.get(i).map(|p| u64::from(p.pm_id));
        self.list_state.select(Some(i));
    }

    fn current(&self) -> Option<&Pm2Process> {
        self.procs.get(self.selected)
    }
}

fn push_capped<T>(q: &mut VecDeque<T>, v: T, cap: usize) {
    if q.len() >= cap {
        q.pop_front();
    }
    q.push_back(v);
}

/// Drops control characters (an app's escape codes must not drive our terminal).
fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c == '\t' { ' ' } else { c }).filter(|c| !c.is_control()).collect()
}

fn ui_loop(term: &mut Term, rx: &mpsc::Receiver<Msg>) -> Result<()> {
    let mut app = App::default();
    let mut last_draw = Instant::now() - REFRESH;
    let mut dirty = true;
    loop {
        loop {
            match rx.try_recv() {
                Ok(m) => {
                    app.apply(m);
                    dirty = true;
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    if app.error.is_none() {
                        app.error = Some("lost the connection to the rpm2 daemon".into());
                    }
                    break;
                }
            }
        }
        if SIGNALLED.load(Ordering::SeqCst) {
            return Ok(());
        }
        if dirty || last_draw.elapsed() >= REFRESH {
            term.draw(|f| draw(f, &mut app)).context("cannot draw")?;
            last_draw = Instant::now();
            dirty = false;
        }
        if !event::poll(Duration::from_millis(100)).context("cannot read the terminal")? {
            continue;
        }
        match event::read().context("cannot read the terminal")? {
            Event::Key(k) if k.kind != KeyEventKind::Release => {
                let page = 10;
                match k.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => return Ok(()),
                    KeyCode::Up | KeyCode::Char('k') => app.select(app.selected as i64 - 1),
                    KeyCode::Down | KeyCode::Char('j') => app.select(app.selected as i64 + 1),
                    KeyCode::PageUp => app.select(app.selected as i64 - page),
                    KeyCode::PageDown => app.select(app.selected as i64 + page),
                    KeyCode::Home | KeyCode::Char('g') => app.select(0),
                    KeyCode::End | KeyCode::Char('G') => app.select(i64::MAX / 2),
                    _ => {}
                }
                dirty = true;
            }
            Event::Resize(..) => {
                let _ = term.autoresize();
                dirty = true;
            }
            _ => {}
        }
    }
}

fn status_color(s: &str) -> Color {
    match s {
        "online" => Color::Green,
        "errored" => Color::Red,
        "stopped" => Color::DarkGray,
        _ => Color::Yellow,
    }
}

fn bar(pct: f64, width: usize) -> String {
    let filled = ((pct.clamp(0.0, 100.0) / 100.0) * width as f64).round() as usize;
    format!("{}{}", "█".repeat(filled.min(width)), "░".repeat(width - filled.min(width)))
}

fn truncate(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        format!("{s:<w$}")
    } else {
        let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn draw(f: &mut Frame, app: &mut App) {
    let [main, footer] = Layout::vertical([Constraint::Fill(1), Constraint::Length(1)]).areas(f.area());
    let [left, right] = Layout::horizontal([Constraint::Percentage(35), Constraint::Fill(1)]).areas(main);
    let [list_area, metrics_area] = Layout::vertical([Constraint::Percentage(60), Constraint::Fill(1)]).areas(left);
    let [logs_area, bottom] = Layout::vertical([Constraint::Fill(1), Constraint::Length(13)]).areas(right);
    let [meta_area, charts_area] = Layout::horizontal([Constraint::Percentage(60), Constraint::Fill(1)]).areas(bottom);

    draw_list(f, app, list_area);
    let cur = app.current().cloned();
    let name = cur.as_ref().map(|p| p.name.clone()).unwrap_or_default();
    let id = cur.as_ref().map(|p| u64::from(p.pm_id));
    draw_metrics(f, cur.as_ref(), metrics_area);
    draw_logs(f, app, id, &name, logs_area);
    draw_meta(f, cur.as_ref(), meta_area);
    draw_charts(f, app, cur.as_ref(), id, charts_area);
    draw_footer(f, app, footer);
}

/// The process list (left, top); the selection is `app.list_state`.
fn draw_list(f: &mut Frame, app: &mut App, list_area: Rect) {
    let name_w = (list_area.width as usize).saturating_sub(2 + 5 + 1 + 7 + 7 + 1 + 8).clamp(4, 24);
    let items: Vec<ListItem> = app
        .procs
        .iter()
        .map(|p| {
            let st = p.pm2_env.status.as_str();
            let (cpu, mem) = (p.monit.cpu, p.monit.memory);
            ListItem::new(Line::from(vec![
                Span::raw(format!("[{:>2}] ", p.pm_id)),
                Span::styled(truncate(&p.name, name_w), Style::new().fg(status_color(st))),
                Span::raw(" "),
                Span::styled(bar(cpu, 5), Style::new().fg(Color::Cyan)),
                Span::raw(format!(" {:>5.1}%", cpu)),
                Span::raw(format!(" {:>8}", human_bytes(mem))),
            ]))
        })
        .collect();
    let title = if app.loaded { " Process List " } else { " Process List (loading) " };
    let list = List::new(items)
        .block(Block::bordered().title(title))
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD));
    f.render_stateful_widget(list, list_area, &mut app.list_state);
    if app.loaded && app.procs.is_empty() {
        let inner =
            Rect { x: list_area.x + 2, y: list_area.y + 1, width: list_area.width.saturating_sub(4), height: 2 };
        f.render_widget(
            Paragraph::new("No process: start one with `rpm2 start app.js`").wrap(Wrap { trim: true }),
            inner,
        );
    }
}

/// The selected process's code metrics (`axm_monitor`): the built-in ones of the metrics preload and
/// the app's own.
fn draw_metrics(f: &mut Frame, cur: Option<&Pm2Process>, metrics_area: Rect) {
    let mut lines = Vec::new();
    if let Some(m) = cur.and_then(|p| p.pm2_env.axm_monitor.as_object()) {
        let kw = (metrics_area.width as usize).saturating_sub(4) / 2;
        for (k, v) in m {
            let val = v.get("value").unwrap_or(v);
            let val = val.as_str().map(String::from).unwrap_or_else(|| val.to_string());
            let unit = v.get("unit").and_then(|u| u.as_str()).unwrap_or("");
            lines.push(Line::from(vec![
                Span::styled(truncate(k, kw), Style::new().fg(Color::Cyan)),
                Span::raw(format!(" {val} {unit}")),
            ]));
        }
    }
    if lines.is_empty() {
        lines.push(Line::styled(
            "none (Node apps report them every second unless pmx: false)",
            Style::new().fg(Color::DarkGray),
        ));
    }
    f.render_widget(Paragraph::new(lines).block(Block::bordered().title(" Custom Metrics ")), metrics_area);
}

/// The last log lines of the selected process (stderr in red).
fn draw_logs(f: &mut Frame, app: &App, id: Option<u64>, name: &str, logs_area: Rect) {
    let height = logs_area.height.saturating_sub(2) as usize;
    let log_lines: Vec<Line> = id
        .and_then(|i| app.logs.get(&i))
        .map(|q| {
            let skip = q.len().saturating_sub(height);
            q.iter()
                .skip(skip)
                .map(
                    |(err, l)| {
                        if *err {
                            Line::styled(l.clone(), Style::new().fg(Color::Red))
                        } else {
                            Line::raw(l.clone())
                        }
                    },
                )
                .collect()
        })
        .unwrap_or_default();
    f.render_widget(Paragraph::new(log_lines).block(Block::bordered().title(format!(" {name} Logs "))), logs_area);
}

/// The selected process's metadata (status, restarts, uptime, paths...).
fn draw_meta(f: &mut Frame, cur: Option<&Pm2Process>, meta_area: Rect) {
    let mut meta = Vec::new();
    if let Some(p) = cur {
        let e = &p.pm2_env;
        let st = e.status.as_str();
        let online = st == "online" || st == "launching";
        let uptime = if online { human_duration(now_ms().saturating_sub(e.pm_uptime)) } else { "0".into() };
        let kv = |k: &str, v: String| {
            Line::from(vec![Span::styled(format!("{k:<16}"), Style::new().fg(Color::Cyan)), Span::raw(v)])
        };
        meta.push(Line::from(vec![
            Span::styled(format!("{:<16}", "status"), Style::new().fg(Color::Cyan)),
            Span::styled(st.to_string(), Style::new().fg(status_color(st))),
        ]));
        let args = if e.args.is_empty() { "N/A".to_string() } else { e.args.join(" ") };
        meta.push(kv("name", p.name.clone()));
        meta.push(kv("namespace", e.namespace.clone()));
        meta.push(kv("restarts", e.restart_time.to_string()));
        meta.push(kv("uptime", uptime));
        meta.push(kv("pid", p.pid.to_string()));
        meta.push(kv("exec mode", e.exec_mode.clone()));
        meta.push(kv("interpreter", e.exec_interpreter.clone()));
        meta.push(kv("script args", args));
        meta.push(kv("script path", e.pm_exec_path.display().to_string()));
    }
    f.render_widget(
        Paragraph::new(meta).block(Block::bordered().title(" Metadata ")).wrap(Wrap { trim: false }),
        meta_area,
    );
}

/// CPU and memory sparklines of the selected process.
fn draw_charts(f: &mut Frame, app: &App, cur: Option<&Pm2Process>, id: Option<u64>, charts_area: Rect) {
    let [cpu_area, mem_area] = Layout::vertical([Constraint::Percentage(50), Constraint::Fill(1)]).areas(charts_area);
    let width = charts_area.width.saturating_sub(2) as usize;
    let tail = |q: Option<&VecDeque<u64>>| -> Vec<u64> {
        q.map(|q| q.iter().skip(q.len().saturating_sub(width)).copied().collect()).unwrap_or_default()
    };
    let cpu_data = tail(id.and_then(|i| app.cpu_hist.get(&i)));
    let mem_data = tail(id.and_then(|i| app.mem_hist.get(&i)));
    let cpu_now = cur.map(|p| p.monit.cpu).unwrap_or(0.0);
    let mem_now = cur.map(|p| p.monit.memory).unwrap_or(0);
    let cpu_max = cpu_data.iter().copied().max().unwrap_or(0).max(1000);
    f.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(format!(" CPU {cpu_now:.1}% ")))
            .data(&cpu_data)
            .max(cpu_max)
            .style(Style::new().fg(Color::Cyan)),
        cpu_area,
    );
    f.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(format!(" Memory {} ", human_bytes(mem_now))))
            .data(&mem_data)
            .style(Style::new().fg(Color::Magenta)),
        mem_area,
    );
}

/// The key help, or the last error.
fn draw_footer(f: &mut Frame, app: &App, footer: Rect) {
    let help = match &app.error {
        Some(e) => Line::styled(format!(" {e}"), Style::new().fg(Color::Red)),
        None => Line::from(vec![
            Span::styled(" ↑/↓", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(" select  "),
            Span::styled("PgUp/PgDn Home/End", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(" jump  "),
            Span::styled("q", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(format!(" quit   rpm2 monit: {} process(es), refreshed every second", app.procs.len())),
        ]),
    };
    f.render_widget(Paragraph::new(help), footer);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use serde_json::json;

    fn proc_(id: u32, name: &str, status: &str) -> Pm2Process {
        let mut p = crate::protocol::process::tests::sample();
        (p.pid, p.name, p.pm_id) = (100 + id, name.into(), id);
        p.monit = crate::protocol::Monit { memory: 50_000_000, cpu: 12.5 };
        let e = &mut p.pm2_env;
        (e.status, e.restart_time, e.pm_uptime, e.pm_exec_path) = (status.into(), 1, now_ms(), "/srv/app.js".into());
        e.axm_monitor = json!({"Requests": {"value": 42, "unit": "req/min"}});
        p
    }

    fn screen(app: &mut App, w: u16, h: u16) -> String {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| draw(f, app)).unwrap();
        let buf = t.backend().buffer().clone();
        let mut s = String::new();
        for y in 0..h {
            for x in 0..w {
                s.push_str(buf[(x, y)].symbol());
            }
            s.push('\n');
        }
        s
    }

    #[test]
    fn draws_processes_details_logs_and_metrics() {
        let mut app = App::default();
        app.apply(Msg::List(vec![proc_(0, "api", "online"), proc_(1, "worker", "errored")]));
        app.apply(Msg::Log { pm_id: 0, err: false, text: "hello from api\n".into() });
        app.apply(Msg::Log { pm_id: 1, err: true, text: "boom\n".into() });
        let s = screen(&mut app, 120, 32);
        assert!(s.contains("api"), "{s}");
        assert!(s.contains("worker"), "{s}");
        assert!(s.contains("hello from api"), "{s}");
        assert!(!s.contains("boom"), "{s}");
        assert!(s.contains("Requests"), "{s}");
        assert!(s.contains("/srv/app.js"), "{s}");
        app.select(1);
        let s = screen(&mut app, 120, 32);
        assert!(s.contains("boom"), "{s}");
        assert!(s.contains("errored"), "{s}");
        // Selection follows the process when the list changes order.
        app.apply(Msg::List(vec![proc_(1, "worker", "errored")]));
        assert_eq!(app.selected, 0);
        assert_eq!(app.selected_id, Some(1));
        assert!(!app.logs.contains_key(&0));
        // Tiny terminals do not panic.
        screen(&mut app, 10, 3);
        screen(&mut App::default(), 1, 1);
    }

    #[test]
    fn helpers() {
        assert_eq!(bar(50.0, 4), "██░░");
        assert_eq!(bar(500.0, 2), "██");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("ab", 4), "ab  ");
        assert_eq!(sanitize("a\x1b[31mb\tc"), "a[31mb c");
    }
}
