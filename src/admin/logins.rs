//! The admin's sign-in log: every attempt, filtered by user, IP address or prefix, client,
//! result and time range; newest first in keyset pages (`before=<at>.<id>`); as a page,
//! as JSON (`/api/admin/logins`) and as a CSV export of the whole filtered list.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::account::history::{cursor_param, parse_cursor};
use crate::clock::Timestamp;
use crate::error::PageError;
use crate::login::ip;
use crate::model::ClientId;
use crate::state::AppState;
use crate::store::{Cursor, LoginEvent, LoginEventFilter, StoreError};
use crate::web::render;

const PAGE_SIZE: i64 = 50;
const MAX_API_PAGE: i64 = 1000;

/// The filters as the form and the API take them; empty means "any".
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LoginQuery {
    /// A user's email address.
    #[serde(default)]
    user: String,
    /// An address, a CIDR network or a prefix of whole groups (`203.0.113.`).
    #[serde(default)]
    ip: String,
    #[serde(default)]
    client: String,
    /// `success` or `failure`.
    #[serde(default)]
    result: String,
    /// `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]` (UTC) or unix seconds; from is inclusive, to
    /// is exclusive (a date alone as `to` includes that whole day).
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: String,
    /// Page size for the API, up to 1000.
    limit: Option<i64>,
}

impl LoginQuery {
    /// The filters as query parameters (without `before`), for links.
    fn params(&self) -> String {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [("user", &self.user), ("ip", &self.ip), ("client", &self.client), ("result", &self.result), ("from", &self.from), ("to", &self.to)] {
            if !value.trim().is_empty() {
                out.append_pair(name, value.trim());
            }
        }
        out.finish()
    }
}

/// A parsed filter; `no_such_user` when the email names nobody (then nothing matches).
struct Parsed {
    filter: LoginEventFilter,
    before: Option<Cursor>,
    no_such_user: bool,
}

/// A time given as a date, a date and time (UTC), or unix seconds. `end_of_day`: a date
/// alone means the end of that day.
pub fn parse_time(input: &str, end_of_day: bool) -> Option<Timestamp> {
    let s = input.trim();
    if let Ok(seconds) = s.parse::<i64>() {
        return Some(seconds);
    }
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t.trim_end_matches('Z'))),
        None => (s, None),
    };
    let mut parts = date.splitn(3, '-');
    let (year, month, day): (i32, u8, u8) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    let date = time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    let midnight = date.midnight().assume_utc().unix_timestamp();
    let Some(time) = time else { return Some(if end_of_day { midnight + 86_400 } else { midnight }) };
    let mut hms = time.split(':');
    let hour: i64 = hms.next()?.parse().ok()?;
    let minute: i64 = hms.next()?.parse().ok()?;
    let second: i64 = match hms.next() {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    if hms.next().is_some() || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(midnight + hour * 3600 + minute * 60 + second)
}

async fn parse(app: &AppState, q: &LoginQuery) -> Result<Parsed, String> {
    let mut filter = LoginEventFilter::default();
    let mut no_such_user = false;
    let user = q.user.trim();
    if !user.is_empty() {
        match app.store.user_credentials(user).await.map_err(|e| internal(&e))? {
            Some((user, _)) => filter.user_id = Some(user.id),
            None => no_such_user = true,
        }
    }
    if !q.ip.trim().is_empty() {
        let range = ip::parse_filter(&q.ip)?;
        filter.ip_keys = Some((range.low, range.high));
    }
    if !q.client.trim().is_empty() {
        filter.client_id = Some(ClientId(q.client.trim().to_string()));
    }
    filter.result = match q.result.trim() {
        "" | "any" => None,
        r @ ("success" | "failure") => Some(r.to_string()),
        other => return Err(format!("“{other}” is not a result: use success or failure.")),
    };
    let when = |s: &str, end| parse_time(s, end).ok_or_else(|| format!("“{s}” is not a time: use 2026-11-23, 2026-11-23T14:00 (UTC) or unix seconds."));
    if !q.from.trim().is_empty() {
        filter.from = Some(when(&q.from, false)?);
    }
    if !q.to.trim().is_empty() {
        filter.to = Some(when(&q.to, true)?);
    }
    let before = match q.before.trim() {
        "" => None,
        b => Some(parse_cursor(b).ok_or_else(|| "The page link is not valid.".to_string())?),
    };
    Ok(Parsed { filter, before, no_such_user })
}

fn internal(e: &StoreError) -> String {
    format!("Internal error {}.", crate::error::log_internal(e))
}

/// One page of the log, and where the next starts.
async fn page_of(app: &AppState, parsed: &Parsed, limit: i64) -> Result<(Vec<LoginEvent>, Option<Cursor>), StoreError> {
    if parsed.no_such_user {
        return Ok((Vec::new(), None));
    }
    let mut events = app.store.login_events(&parsed.filter, parsed.before.as_ref(), limit + 1).await?;
    let more = events.len() as i64 > limit;
    events.truncate(limit as usize);
    let next = if more { events.last().map(|e| Cursor { at: e.at, id: e.id.clone() }) } else { None };
    Ok((events, next))
}

/// `2026-11-23 14:02:05 UTC`
pub fn utc_second(at: Timestamp) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(at).ok().and_then(|t| t.format(format).ok()).unwrap_or_else(|| at.to_string())
}

fn rfc3339(at: Timestamp) -> String {
    crate::web::templates::utc_machine(at)
}

/// What the page, the API and the export show of an event.
#[derive(Debug, Serialize)]
pub struct Row {
    id: String,
    at: Timestamp,
    time: String,
    user_id: Option<String>,
    user_email: Option<String>,
    client_id: Option<String>,
    method: String,
    result: String,
    reason: Option<String>,
    ip: Option<String>,
    device: String,
    os: String,
    browser: String,
    user_agent: Option<String>,
}

impl From<LoginEvent> for Row {
    fn from(e: LoginEvent) -> Self {
        Self {
            time: rfc3339(e.at),
            id: e.id,
            at: e.at,
            user_id: e.user_id.map(|u| u.to_string()),
            user_email: e.user_email,
            client_id: e.client_id.map(|c| c.to_string()),
            method: e.method,
            result: e.result,
            reason: e.reason,
            ip: e.ip,
            device: e.device,
            os: e.os,
            browser: e.browser,
            user_agent: e.user_agent,
        }
    }
}

impl Row {
    /// Who, as the page shows it.
    fn who(&self) -> String {
        match (&self.user_email, &self.user_id) {
            (Some(email), _) => email.clone(),
            (None, Some(id)) => format!("deleted user {id}"),
            (None, None) => "no such account".into(),
        }
    }

    fn when(&self) -> String {
        utc_second(self.at)
    }
}

#[derive(askama::Template)]
#[template(path = "admin_logins.html")]
struct LoginsPage<'a> {
    q: &'a LoginQuery,
    error: Option<String>,
    no_such_user: bool,
    rows: Vec<Row>,
    filters: String,
    older: Option<String>,
    paged: bool,
}

pub async fn get_logins(State(app): State<AppState>, Query(q): Query<LoginQuery>) -> Result<Response, PageError> {
    let filters = q.params();
    let (error, no_such_user, rows, older, paged) = match parse(&app, &q).await {
        Ok(parsed) => {
            let (events, next) = page_of(&app, &parsed, PAGE_SIZE).await?;
            (None, parsed.no_such_user, events.into_iter().map(Row::from).collect(), next.as_ref().map(cursor_param), parsed.before.is_some())
        }
        Err(message) => (Some(message), false, Vec::new(), None, false),
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let mut response = render(&LoginsPage { q: &q, error, no_such_user, rows, filters, older, paged });
    *response.status_mut() = status;
    Ok(response)
}

pub async fn get_logins_json(State(app): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    let bad = |m: String| (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_request", "error_description": m}))).into_response();
    let limit = q.limit.unwrap_or(PAGE_SIZE);
    if !(1..=MAX_API_PAGE).contains(&limit) {
        return bad(format!("limit must be 1 to {MAX_API_PAGE}"));
    }
    let parsed = match parse(&app, &q).await {
        Ok(p) => p,
        Err(m) => return bad(m),
    };
    match page_of(&app, &parsed, limit).await {
        Ok((events, next)) => {
            let events: Vec<Row> = events.into_iter().map(Row::from).collect();
            Json(json!({"events": events, "next": next.as_ref().map(cursor_param)})).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "server_error", "error_description": internal(&e)}))).into_response(),
    }
}

const CSV_HEADER: &str = "time,user_email,user_id,client_id,method,result,reason,ip,device,os,browser,user_agent\r\n";

/// One CSV field (RFC 4180 quoting). A value a spreadsheet would run as a formula (user
/// agents are chosen by whoever signs in) gets a leading apostrophe.
fn csv_field(out: &mut String, value: &str) {
    let risky = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = risky || value.contains([',', '"', '\n', '\r']);
    if quote {
        out.push('"');
        if risky {
            out.push('\'');
        }
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

pub fn csv_line(row: &Row) -> String {
    let mut out = String::with_capacity(256);
    let fields = [
        row.time.as_str(),
        row.user_email.as_deref().unwrap_or(""),
        row.user_id.as_deref().unwrap_or(""),
        row.client_id.as_deref().unwrap_or(""),
        &row.method,
        &row.result,
        row.reason.as_deref().unwrap_or(""),
        row.ip.as_deref().unwrap_or(""),
        &row.device,
        &row.os,
        &row.browser,
        row.user_agent.as_deref().unwrap_or(""),
    ];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(&mut out, field);
    }
    out.push_str("\r\n");
    out
}

/// The whole filtered list as CSV, streamed as the database reads it (one query, any size).
pub async fn get_logins_csv(State(app): State<AppState>, Query(q): Query<LoginQuery>) -> Result<Response, PageError> {
    let parsed = parse(&app, &q).await.map_err(PageError::bad_request)?;
    let (sender, receiver) = tokio::sync::mpsc::channel::<LoginEvent>(1024);
    if !parsed.no_such_user {
        let store = app.store.clone();
        let filter = parsed.filter.clone();
        tokio::spawn(async move {
            if let Err(e) = store.stream_login_events(&filter, sender).await {
                // The response has started: the client sees a cut-off file, the log says why.
                crate::error::log_internal(&e);
            }
        });
    }
    let chunks = futures_util::stream::unfold((receiver, true), |(mut receiver, first)| async move {
        let mut chunk = if first { CSV_HEADER.to_string() } else { String::new() };
        let mut batch = Vec::with_capacity(256);
        if receiver.recv_many(&mut batch, 256).await == 0 && !first {
            return None;
        }
        for event in batch {
            chunk.push_str(&csv_line(&Row::from(event)));
        }
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(chunk)), (receiver, false)))
    });
    let mut response = Body::from_stream(chunks).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"sluis-logins.csv\""));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_several_forms() {
        assert_eq!(parse_time("2026-11-23", false), Some(1_795_392_000));
        assert_eq!(parse_time("2026-11-23", true), Some(1_795_392_000 + 86_400));
        assert_eq!(parse_time("2026-11-23T14:02", false), Some(1_795_442_520));
        assert_eq!(parse_time("2026-11-23 14:02:30", true), Some(1_795_442_550));
        assert_eq!(parse_time("2026-11-23T14:02:30Z", false), Some(1_795_442_550));
        assert_eq!(parse_time("1795442550", false), Some(1_795_442_550));
        for bad in ["2026-13-01", "2026-11-23T25:00", "yesterday", "2026-11", "2026-11-23T14:02:30:01"] {
            assert_eq!(parse_time(bad, false), None, "{bad}");
        }
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let mut out = String::new();
        csv_field(&mut out, "plain");
        out.push('|');
        csv_field(&mut out, "a,\"b\"");
        out.push('|');
        csv_field(&mut out, "=HYPERLINK(\"x\")");
        assert_eq!(out, "plain|\"a,\"\"b\"\"\"|\"'=HYPERLINK(\"\"x\"\")\"");
    }
}
