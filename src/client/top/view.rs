//! Drawing the dashboard. Every section gets its minimum rows first (80×24 holds them
//! all, with up to four queues), then the rows left go round the sections that have more
//! to show, one at a time, and the events take what remains: a taller terminal shows more
//! queues, agents, tasks and events. From [`WIDE`] columns up, agents and running tasks go
//! side by side, and from [`WIDE_QUEUES`] up, queues and throughput.
//!
//! Everything a client wrote (queue and agent names, titles, results, output) goes through
//! [`escape`], as in every human view: nothing on the screen can drive the terminal.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Paragraph, RenderDirection, Row, Sparkline, Table, TableState,
};

use super::model::{Dashboard, Focus, Link, Mode};
use super::throughput::Counter;
use crate::client::escape::escape;
use crate::client::output;
use crate::protocol::types::now_millis;
use crate::protocol::{AgentStatus, Event, Millis, TaskStatus};

/// From this width, agents and running tasks go side by side.
const WIDE: u16 = 120;
/// The throughput section's width beside the queues: a bar per second for a minute.
const THROUGHPUT_WIDTH: u16 = RATE_LABEL + 61;
/// A rate's label: `failed    10.5k/s`.
const RATE_LABEL: u16 = 17;
/// From this width, the queues (whose table needs about 70 columns) go beside the
/// throughput.
const WIDE_QUEUES: u16 = 70 + 2 + THROUGHPUT_WIDTH;
/// How long a note (what an action did) stays in the footer.
const NOTE_SECONDS: u64 = 5;
/// The statuses in the queue table, in the order a task goes through them.
const QUEUE_COLUMNS: [(TaskStatus, &str); 7] = [
    (TaskStatus::Queued, "QUEUED"),
    (TaskStatus::Running, "RUNNING"),
    (TaskStatus::Scheduled, "SCHEDULED"),
    (TaskStatus::Blocked, "BLOCKED"),
    (TaskStatus::Done, "DONE"),
    (TaskStatus::Failed, "FAILED"),
    (TaskStatus::Cancelled, "CANCELLED"),
];
/// The throughput section: its title and one row per counter.
const THROUGHPUT_ROWS: u16 = 1 + Counter::ALL.len() as u16;

pub fn draw(frame: &mut Frame, dashboard: &Dashboard) {
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_header(frame, header, dashboard);
    let detail_open = match &dashboard.mode {
        Mode::Detail(_) => true,
        Mode::Confirm { in_detail, .. } => *in_detail,
        Mode::Main => false,
    };
    if detail_open {
        draw_detail(frame, body, dashboard);
    } else {
        draw_main(frame, body, dashboard);
    }
    draw_footer(frame, footer, dashboard);
}

/// Rows a table section wants: its title, its header, its rows (at least one, which says
/// when there is nothing).
fn table_rows(rows: usize) -> u16 {
    2 + rows.max(1).min(u16::MAX as usize / 2) as u16
}

/// Splits `total` rows among sections given as (minimum, wanted): minimums first, in
/// order, then one row at a time to each section that wants more, the rest to the last.
fn allocate(total: u16, sections: &[(u16, u16)]) -> Vec<u16> {
    let mut sizes: Vec<u16> = Vec::with_capacity(sections.len());
    let mut left = total;
    for &(least, _) in sections {
        let given = least.min(left);
        sizes.push(given);
        left -= given;
    }
    while left > 0 {
        let mut gave = false;
        for (size, &(_, wanted)) in sizes.iter_mut().zip(sections) {
            if left > 0 && *size < wanted {
                *size += 1;
                left -= 1;
                gave = true;
            }
        }
        if !gave {
            break;
        }
    }
    if let Some(last) = sizes.last_mut() {
        *last += left;
    }
    sizes
}

/// A band of rows across the screen: one section, or two side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Band {
    // In the order they appear on the screen.
    Throughput,
    Queues,
    QueuesAndThroughput,
    Agents,
    Running,
    AgentsAndRunning,
    Events,
}

/// The bands for a body `width` columns wide, as (band, least rows, rows wanted), in the
/// order rows are given: up to four queues whatever the height (the counts come first),
/// then running tasks before agents.
fn bands(d: &Dashboard, width: u16) -> Vec<(Band, u16, u16)> {
    let queues = table_rows(d.queues.len());
    let mut bands = if width >= WIDE_QUEUES {
        vec![(
            Band::QueuesAndThroughput,
            queues.clamp(THROUGHPUT_ROWS, 6),
            queues.max(THROUGHPUT_ROWS),
        )]
    } else {
        vec![
            (Band::Throughput, THROUGHPUT_ROWS, THROUGHPUT_ROWS),
            (Band::Queues, queues.min(6), queues),
        ]
    };
    if width >= WIDE {
        let rows = table_rows(d.agents.len().max(d.running.len()));
        bands.push((Band::AgentsAndRunning, 3, rows));
    } else {
        bands.push((Band::Running, 3, table_rows(d.running.len())));
        bands.push((Band::Agents, 3, table_rows(d.agents.len())));
    }
    bands.push((Band::Events, 2, 1 + d.events.len().max(1) as u16));
    bands
}

fn draw_main(frame: &mut Frame, area: Rect, d: &Dashboard) {
    let bands = bands(d, area.width);
    let wanted: Vec<(u16, u16)> = bands
        .iter()
        .map(|&(_, least, want)| (least, want))
        .collect();
    let mut sized: Vec<(Band, u16)> = bands
        .iter()
        .map(|&(band, ..)| band)
        .zip(allocate(area.height, &wanted))
        .collect();
    sized.sort_by_key(|&(band, _)| band);
    let areas =
        Layout::vertical(sized.iter().map(|&(_, rows)| Constraint::Length(rows))).split(area);
    for (&(band, _), &area) in sized.iter().zip(areas.iter()) {
        match band {
            Band::Throughput => draw_throughput(frame, area, d),
            Band::Queues => draw_queues(frame, area, d),
            Band::QueuesAndThroughput => {
                let [queues, throughput] =
                    Layout::horizontal([Constraint::Fill(1), Constraint::Length(THROUGHPUT_WIDTH)])
                        .spacing(2)
                        .areas(area);
                draw_queues(frame, queues, d);
                draw_throughput(frame, throughput, d);
            }
            Band::Agents => draw_agents(frame, area, d),
            Band::Running => draw_running(frame, area, d),
            Band::AgentsAndRunning => {
                let [agents, running] =
                    Layout::horizontal([Constraint::Fill(2), Constraint::Fill(3)])
                        .spacing(2)
                        .areas(area);
                draw_agents(frame, agents, d);
                draw_running(frame, running, d);
            }
            Band::Events => draw_events(frame, area, d),
        }
    }
}

/// A section: its title on a rule across the top.
fn section(title: String) -> Block<'static> {
    Block::new()
        .borders(Borders::TOP)
        .border_style(Style::new().fg(Color::DarkGray))
        .title(Line::from(format!(" {title} ")).bold())
}

fn header_style() -> Style {
    Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
}

fn right(text: String) -> Cell<'static> {
    Cell::from(Line::from(text).right_aligned())
}

fn draw_header(frame: &mut Frame, area: Rect, d: &Dashboard) {
    let (status, style) = match &d.link {
        Link::Connecting => ("connecting…".to_string(), Style::new()),
        Link::Up => {
            let uptime = d.uptime.map_or(String::new(), |(ms, at)| {
                let ms = ms + at.elapsed().as_millis() as u64;
                format!("daemon up {} · ", compact_duration(ms))
            });
            (format!("{uptime}{}", clock(now_millis())), Style::new())
        }
        Link::Down { reason, since } => (
            format!(
                "daemon not answering, retrying… (since {}: {})",
                clock(*since),
                escape(reason)
            ),
            Style::new().fg(Color::White).bg(Color::Red).bold(),
        ),
    };
    let line = Line::from(vec![
        Span::from(" vapora top ").bold(),
        Span::from(escape(&d.socket).into_owned()).fg(Color::DarkGray),
        Span::from("  "),
        Span::styled(status, style),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

fn draw_footer(frame: &mut Frame, area: Rect, d: &Dashboard) {
    let line = if let Mode::Confirm { id, title, .. } = &d.mode {
        Line::from(vec![
            Span::from(format!(" Cancel task {id} ({})? ", escape(title))).bold(),
            Span::from("y/n").bold().fg(Color::Yellow),
        ])
    } else if let Some((note, _)) = d
        .note
        .as_ref()
        .filter(|(_, at)| at.elapsed().as_secs() < NOTE_SECONDS)
    {
        Line::from(format!(" {}", escape(note))).fg(Color::Yellow)
    } else {
        let keys: &[(&str, &str)] = match d.mode {
            Mode::Detail(_) => &[
                ("Esc", "back"),
                ("c", "cancel"),
                ("p", "pause/resume agent"),
                ("q", "quit"),
            ],
            _ => &[
                ("q", "quit"),
                ("↑↓/jk", "select"),
                ("Tab", "tasks/agents"),
                ("Enter", "show"),
                ("c", "cancel"),
                ("p", "pause/resume"),
            ],
        };
        let mut spans = Vec::new();
        for (key, what) in keys {
            spans.push(Span::from(format!(" {key}")).bold());
            spans.push(Span::from(format!(" {what} ")));
        }
        Line::from(spans)
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// `1.5`, `12`, `3.4k`: a rate in a few characters.
fn rate_words(rate: Option<f64>) -> String {
    match rate {
        None => "-".into(),
        Some(rate) if rate < 10.0 => format!("{rate:.1}"),
        Some(rate) if rate < 10_000.0 => format!("{rate:.0}"),
        Some(rate) => format!("{:.1}k", rate / 1000.0),
    }
}

fn draw_throughput(frame: &mut Frame, area: Rect, d: &Dashboard) {
    let block = section("Throughput /s (10 s; bars: last minute)".into());
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let rows = Layout::vertical([Constraint::Length(1); Counter::ALL.len()]).split(inner);
    for (counter, row) in Counter::ALL.into_iter().zip(rows.iter()) {
        let [label, bars] =
            Layout::horizontal([Constraint::Length(RATE_LABEL), Constraint::Fill(1)]).areas(*row);
        let rate = d.throughput.rate(counter);
        let style = match counter {
            Counter::Failed if rate.is_some_and(|r| r > 0.0) => Style::new().fg(Color::Red),
            Counter::Done => Style::new().fg(Color::Green),
            _ => Style::new(),
        };
        let text = format!("{:<7}{:>8}/s", counter.label(), rate_words(rate));
        frame.render_widget(Paragraph::new(Line::from(text).style(style)), label);
        // Newest at the right edge.
        let mut series = d.throughput.series(counter);
        series.reverse();
        series.truncate(bars.width as usize);
        let sparkline = Sparkline::default()
            .data(series)
            .direction(RenderDirection::RightToLeft)
            .style(style);
        frame.render_widget(sparkline, bars);
    }
}

/// `5`, or `3 of 5` when a table section of `area` shows only 3 of its 5 rows.
fn shown_of(rows: usize, area: Rect) -> String {
    let shown = area.height.saturating_sub(2) as usize;
    if rows > shown {
        format!("{shown} of {rows}")
    } else {
        rows.to_string()
    }
}

fn draw_queues(frame: &mut Frame, area: Rect, d: &Dashboard) {
    let title = format!("Queues ({})", shown_of(d.queues.len(), area));
    let mut widths = vec![Constraint::Fill(1)];
    widths.extend(
        QUEUE_COLUMNS
            .iter()
            .map(|(_, name)| Constraint::Length(name.len().max(7) as u16)),
    );
    let mut header = vec![Cell::from("QUEUE")];
    header.extend(
        QUEUE_COLUMNS
            .iter()
            .map(|(_, name)| right(name.to_string())),
    );
    let mut rows: Vec<Row> = d
        .queues
        .iter()
        .map(|queue| {
            let mut cells = vec![Cell::from(escape(&queue.name).into_owned())];
            cells.extend(QUEUE_COLUMNS.iter().map(|(status, _)| {
                let count = queue.counts[status.index()];
                let cell = right(count.to_string());
                match (count, status) {
                    (0, _) => cell.fg(Color::DarkGray),
                    (_, TaskStatus::Running) => cell.fg(Color::Green),
                    (_, TaskStatus::Failed) => cell.fg(Color::Red),
                    _ => cell,
                }
            }));
            Row::new(cells)
        })
        .collect();
    if rows.is_empty() {
        rows.push(Row::new([Cell::from("(no tasks)").fg(Color::DarkGray)]));
    }
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(header_style()))
        .block(section(title));
    frame.render_widget(table, area);
}

fn agent_style(status: AgentStatus) -> Style {
    match status {
        AgentStatus::Busy => Style::new().fg(Color::Green),
        AgentStatus::Idle => Style::new(),
        AgentStatus::Paused => Style::new().fg(Color::Yellow),
        AgentStatus::Offline => Style::new().fg(Color::DarkGray),
    }
}

fn selected_style() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

fn draw_agents(frame: &mut Frame, area: Rect, d: &Dashboard) {
    let focused = d.focus == Focus::Agents && d.mode == Mode::Main;
    let title = format!(
        "Agents ({}){}",
        shown_of(d.agents.len(), area),
        if focused { " · p pauses/resumes" } else { "" }
    );
    let now = now_millis();
    let mut rows: Vec<Row> = d
        .agents
        .iter()
        .map(|agent| {
            Row::new([
                Cell::from(escape(&agent.name).into_owned()),
                Cell::from(agent.status.as_str()),
                right(format!("{}/{}", agent.running, agent.max_tasks)),
                right(age_words(agent.last_heartbeat, now)),
                Cell::from(escape(&agent.capabilities.join(",")).into_owned()),
            ])
            .style(agent_style(agent.status))
        })
        .collect();
    if rows.is_empty() {
        rows.push(Row::new([Cell::from("(no agents)").fg(Color::DarkGray)]));
    }
    let widths = [
        Constraint::Fill(2),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Fill(1),
    ];
    let header = Row::new([
        Cell::from("AGENT"),
        Cell::from("STATUS"),
        right("TASKS".into()),
        right("HEARTBEAT".into()),
        Cell::from("CAPABILITIES"),
    ])
    .style(header_style());
    let table = Table::new(rows, widths)
        .header(header)
        .block(section(title))
        .row_highlight_style(selected_style());
    let mut state = TableState::default().with_selected(focused.then_some(d.agent_selection.index));
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_running(frame: &mut Frame, area: Rect, d: &Dashboard) {
    let focused = d.focus == Focus::Tasks;
    let title = if d.running_cut {
        format!(
            "Running ({}, the first {} listed)",
            d.running_total,
            d.running.len()
        )
    } else {
        format!("Running ({})", shown_of(d.running.len(), area))
    };
    let now = now_millis();
    let mut rows: Vec<Row> = d
        .running
        .iter()
        .map(|task| {
            let elapsed = task
                .started_at
                .map_or("-".into(), |at| compact_duration(now.saturating_sub(at)));
            Row::new([
                right(task.id.to_string()),
                Cell::from(escape(task.agent.as_deref().unwrap_or("-")).into_owned()),
                right(elapsed),
                Cell::from(escape(&task.queue).into_owned()),
                match &task.title {
                    Some(title) => Cell::from(escape(title).into_owned()),
                    None => Cell::from("…").fg(Color::DarkGray),
                },
            ])
        })
        .collect();
    if rows.is_empty() {
        rows.push(Row::new([
            Cell::from(""),
            Cell::from("(none)").fg(Color::DarkGray),
        ]));
    }
    let widths = [
        Constraint::Length(7),
        Constraint::Length(12),
        Constraint::Length(8),
        Constraint::Length(10),
        Constraint::Fill(1),
    ];
    let header = Row::new([
        right("ID".into()),
        Cell::from("AGENT"),
        right("ELAPSED".into()),
        Cell::from("QUEUE"),
        Cell::from("TITLE"),
    ])
    .style(header_style());
    let table = Table::new(rows, widths)
        .header(header)
        .block(section(title))
        .row_highlight_style(selected_style());
    let selected = (focused && !d.running.is_empty()).then_some(d.task_selection.index);
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_events(frame: &mut Frame, area: Rect, d: &Dashboard) {
    let title = match &d.stream_down {
        Some(reason) => format!("Events (stream lost, reconnecting: {})", escape(reason)),
        None if d.missed > 0 => format!("Events ({} missed: top fell behind)", d.missed),
        None => "Events".into(),
    };
    let block = section(title);
    let shown = block.inner(area).height as usize;
    let mut lines: Vec<Line> = d.events.iter().take(shown).map(event_line).collect();
    if lines.is_empty() {
        lines.push(Line::from("(none since top started)").fg(Color::DarkGray));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn event_line(event: &Event) -> Line<'static> {
    let style = match event.kind.as_str() {
        "task_done" => Style::new().fg(Color::Green),
        "task_failed" | "lease_expired" => Style::new().fg(Color::Red),
        "task_cancelled" | "lagged" => Style::new().fg(Color::Yellow),
        _ => Style::new(),
    };
    let mut spans = vec![
        Span::from(format!("{} ", clock(event.at))).fg(Color::DarkGray),
        Span::styled(format!("{:<20}", escape(&event.kind)), style),
    ];
    if let Some(task) = event.task {
        spans.push(Span::from(format!(" #{task}")).bold());
    }
    for value in [&event.queue, &event.agent, &event.status]
        .into_iter()
        .flatten()
    {
        spans.push(Span::from(format!(" {}", escape(value))));
    }
    if event.kind == "lagged" {
        spans.push(Span::from(format!(" missed {} events", event.dropped)));
    }
    if let Some(detail) = &event.detail {
        spans.push(Span::from(format!(" \"{}\"", escape(detail))).fg(Color::DarkGray));
    }
    Line::from(spans)
}

fn draw_detail(frame: &mut Frame, area: Rect, d: &Dashboard) {
    let Some(detail) = &d.detail else {
        let id = match d.mode {
            Mode::Detail(id) | Mode::Confirm { id, .. } => id.to_string(),
            _ => String::new(),
        };
        let block = section(format!("Task {id}"));
        frame.render_widget(Paragraph::new("loading…").block(block), area);
        return;
    };
    let task = match &detail.task {
        Ok(task) => task,
        Err(reason) => {
            let block = section(format!("Task {}", detail.id));
            frame.render_widget(
                Paragraph::new(escape(reason).into_owned()).block(block),
                area,
            );
            return;
        }
    };
    let fields = output::task_rows(task);
    let width = fields.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 1;
    let field_lines: Vec<Line> = fields
        .iter()
        .map(|(key, value)| {
            Line::from(vec![
                Span::from(format!("{:<width$} ", format!("{key}:"))).bold(),
                Span::from(value.clone()),
            ])
        })
        .collect();
    // The fields, leaving the output a third of the view (at least 4 rows).
    let output_least = (area.height / 3).max(4).min(area.height);
    let field_rows = (1 + field_lines.len() as u16).min(area.height - output_least);
    let [top, bottom] =
        Layout::vertical([Constraint::Length(field_rows), Constraint::Fill(1)]).areas(area);
    frame.render_widget(
        Paragraph::new(field_lines).block(section(format!("Task {}", task.id))),
        top,
    );
    let block = section(format!(
        "Output of attempt {} (its last lines)",
        task.attempts.max(1)
    ));
    let shown = block.inner(bottom).height as usize;
    let text = String::from_utf8_lossy(&detail.output);
    let mut lines: Vec<Line> = last_lines(&text, shown)
        .into_iter()
        .map(Line::from)
        .collect();
    if lines.is_empty() {
        lines.push(Line::from("(no output)").fg(Color::DarkGray));
    }
    frame.render_widget(Paragraph::new(lines).block(block), bottom);
}

/// The last `count` lines of `text` as a terminal would leave them: each line as it
/// stands after its last carriage return (progress bars), tabs as spaces, and the rest of
/// what could drive the terminal escaped.
fn last_lines(text: &str, count: usize) -> Vec<String> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.is_empty() {
        return Vec::new();
    }
    let mut lines: Vec<String> = body
        .rsplit('\n')
        .take(count)
        .map(|line| {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let line = line.rsplit('\r').next().unwrap_or(line);
            escape(&line.replace('\t', "    ")).into_owned()
        })
        .collect();
    lines.reverse();
    lines
}

/// `42s`, `3m05s`, `2h10m`, `3d04h`.
fn compact_duration(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..=86399 => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
        _ => format!("{}d{:02}h", secs / 86400, secs / 3600 % 24),
    }
}

/// How long ago `at` was: `3s ago`.
fn age_words(at: Millis, now: Millis) -> String {
    format!("{} ago", compact_duration(now.saturating_sub(at)))
}

/// `HH:MM:SS`, local time.
fn clock(ms: Millis) -> String {
    let secs = (ms / 1000) as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value for localtime_r to overwrite.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r reads `secs` and writes only into `tm`, both ours.
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return "--:--:--".into();
    }
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_go_to_the_sections_that_want_them_and_the_rest_to_the_last() {
        assert_eq!(
            allocate(22, &[(4, 4), (3, 4), (3, 3), (3, 9), (2, 100)]),
            vec![4, 4, 3, 6, 5]
        );
        // Too small: the minimums in order, as far as they go.
        assert_eq!(allocate(8, &[(4, 4), (3, 3), (3, 3)]), vec![4, 3, 1]);
        assert_eq!(allocate(10, &[(2, 2), (2, 2)]), vec![2, 8]);
    }

    #[test]
    fn output_lines_are_shown_as_a_terminal_leaves_them() {
        let text = "one\ntwo\tx\n10%\r50%\r100%\n\u{1b}[2Jfour\n";
        assert_eq!(
            last_lines(text, 3),
            vec!["two    x".to_string(), "100%".into(), "\\e[2Jfour".into()]
        );
        assert!(last_lines("", 3).is_empty());
        assert_eq!(last_lines("crlf\r\n", 1), vec!["crlf".to_string()]);
    }

    #[test]
    fn durations_and_rates_are_short() {
        assert_eq!(compact_duration(42_000), "42s");
        assert_eq!(compact_duration(185_000), "3m05s");
        assert_eq!(compact_duration(7_800_000), "2h10m");
        assert_eq!(rate_words(Some(1.25)), "1.2");
        assert_eq!(rate_words(Some(123.4)), "123");
        assert_eq!(rate_words(Some(45_600.0)), "45.6k");
        assert_eq!(rate_words(None), "-");
    }
}
