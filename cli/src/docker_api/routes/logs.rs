//! `GET /services/{id}/logs` and `GET /tasks/{id}/logs`: the log broker's
//! lines in Docker's stream format. Each line carries its task's context as
//! `details` (`com.docker.swarm.node.id=...,...`), which the `docker` CLI
//! parses to print `web.1.abc@node    | line`. Without a TTY, lines are
//! framed as Docker's multiplexed stream (8-byte header: stream, size).

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use shoal_proto::logs::{
    LogMessage, LogSelector, LogStream, LogSubscriptionOptions, SubscribeLogsRequest,
};

use super::flag;
use crate::docker_api::Daemon;
use crate::docker_api::error::{ApiError, ApiResult};

type Q = Query<HashMap<String, String>>;

/// Which lines and how they are written.
#[derive(Debug, Clone, Copy)]
struct Shape {
    stdout: bool,
    stderr: bool,
    timestamps: bool,
    details: bool,
    tty: bool,
}

/// `GET /services/{id}/logs`.
pub async fn service_logs(
    State(d): State<Daemon>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult<Response> {
    let service = super::services::get(&d, &id).await?;
    let tty = service
        .spec
        .as_ref()
        .and_then(|s| s.task.as_ref())
        .and_then(|t| t.container.as_ref())
        .is_some_and(|c| c.tty);
    let selector = LogSelector {
        service_ids: vec![service.id],
        ..Default::default()
    };
    stream(d, selector, &q, tty).await
}

/// `GET /tasks/{id}/logs`.
pub async fn task_logs(
    State(d): State<Daemon>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult<Response> {
    let task = super::services::get_task(&d, &id).await?;
    let tty = task
        .spec
        .as_ref()
        .and_then(|t| t.container.as_ref())
        .is_some_and(|c| c.tty);
    let selector = LogSelector {
        task_ids: vec![task.id],
        ..Default::default()
    };
    stream(d, selector, &q, tty).await
}

async fn stream(
    d: Daemon,
    selector: LogSelector,
    q: &HashMap<String, String>,
    tty: bool,
) -> ApiResult<Response> {
    let shape = Shape {
        stdout: flag(q, "stdout"),
        stderr: flag(q, "stderr"),
        timestamps: flag(q, "timestamps"),
        details: flag(q, "details"),
        tty,
    };
    if !shape.stdout && !shape.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tail = match q.get("tail").map(String::as_str) {
        None | Some("") | Some("all") => -1,
        Some(n) => n
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid tail value {n:?}")))?,
    };
    let since = q
        .get("since")
        .filter(|s| !s.is_empty() && *s != "0")
        .map(|s| super::unix_time("since", s))
        .transpose()?;
    let request = SubscribeLogsRequest {
        selector: Some(selector),
        options: Some(LogSubscriptionOptions {
            streams: Vec::new(),
            follow: flag(q, "follow"),
            tail,
            since,
        }),
    };
    let messages = d.logs.clone().subscribe_logs(request).await?.into_inner();
    let body = messages
        .take_while(|m| std::future::ready(m.is_ok()))
        .filter_map(|m| std::future::ready(m.ok()))
        .flat_map(move |m| {
            let frames: Vec<Result<Bytes, Infallible>> = m
                .messages
                .into_iter()
                .filter_map(|line| frame(&line, shape))
                .map(Ok)
                .collect();
            futures_util::stream::iter(frames)
        });
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(body),
    )
        .into_response())
}

/// One log line as Docker writes it, or None when its stream was not asked for.
fn frame(line: &LogMessage, shape: Shape) -> Option<Bytes> {
    let stderr = line.stream == LogStream::Stderr as i32;
    if (stderr && !shape.stderr) || (!stderr && !shape.stdout) {
        return None;
    }
    let mut text = Vec::with_capacity(line.data.len() + 160);
    if shape.timestamps {
        let at = line
            .timestamp
            .as_ref()
            .and_then(|t| crate::docker_api::convert::rfc3339(Some(t)))
            .unwrap_or_default();
        text.extend_from_slice(at.as_bytes());
        text.push(b' ');
    }
    if shape.details {
        let c = line.context.clone().unwrap_or_default();
        text.extend_from_slice(
            format!(
                "com.docker.swarm.node.id={},com.docker.swarm.service.id={},com.docker.swarm.task.id={} ",
                c.node_id, c.service_id, c.task_id
            )
            .as_bytes(),
        );
    }
    text.extend_from_slice(&line.data);
    if !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    if shape.tty {
        return Some(Bytes::from(text));
    }
    let mut framed = Vec::with_capacity(text.len() + 8);
    framed.push(if stderr { 2 } else { 1 });
    framed.extend_from_slice(&[0, 0, 0]);
    framed.extend_from_slice(&(text.len() as u32).to_be_bytes());
    framed.extend_from_slice(&text);
    Some(Bytes::from(framed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_proto::logs::LogContext;

    #[test]
    fn lines_are_framed_with_their_task_context() {
        let line = LogMessage {
            context: Some(LogContext {
                service_id: "s1".into(),
                node_id: "n1".into(),
                task_id: "t1".into(),
            }),
            timestamp: None,
            stream: LogStream::Stdout as i32,
            data: b"hello".to_vec(),
        };
        let shape = Shape {
            stdout: true,
            stderr: false,
            timestamps: false,
            details: true,
            tty: false,
        };
        let framed = frame(&line, shape).unwrap();
        let text = b"com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=t1 hello\n";
        assert_eq!(&framed[..4], &[1, 0, 0, 0]);
        assert_eq!(
            u32::from_be_bytes(framed[4..8].try_into().unwrap()) as usize,
            text.len()
        );
        assert_eq!(&framed[8..], text);
        assert!(
            frame(
                &LogMessage {
                    stream: LogStream::Stderr as i32,
                    ..line
                },
                shape
            )
            .is_none()
        );
    }
}
