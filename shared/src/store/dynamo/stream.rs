//! The connections table's stream as the fan-out worker receives it: a batch
//! of records, each the new image of a job item (the event source mapping's
//! filter lets only those through). Only the fields a job needs are parsed;
//! the attribute names are the ones `connections` writes.

use std::collections::HashMap;

use serde::Deserialize;

use super::connections::{JobImage, job_from_image};
use crate::realtime::job::Job;

/// A DynamoDB stream event (`Records`).
#[derive(Debug, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<StreamRecord>,
}

#[derive(Debug, Deserialize)]
pub struct StreamRecord {
    #[serde(rename = "eventName", default)]
    event_name: Option<String>,
    #[serde(default)]
    dynamodb: Option<StreamChange>,
}

#[derive(Debug, Deserialize)]
struct StreamChange {
    #[serde(rename = "NewImage", default)]
    new_image: Option<HashMap<String, Attribute>>,
    #[serde(rename = "SequenceNumber", default)]
    sequence_number: Option<String>,
}

/// A DynamoDB attribute value; only strings, numbers and string sets are
/// read (all a job item has).
#[derive(Debug, Deserialize)]
struct Attribute {
    #[serde(rename = "S", default)]
    s: Option<String>,
    #[serde(rename = "N", default)]
    n: Option<String>,
    #[serde(rename = "SS", default)]
    ss: Option<Vec<String>>,
}

struct Image<'a>(&'a HashMap<String, Attribute>);

impl JobImage for Image<'_> {
    fn text(&self, name: &str) -> Option<&str> {
        let a = self.0.get(name)?;
        a.s.as_deref().or(a.n.as_deref())
    }
    fn strings(&self, name: &str) -> Option<Vec<&str>> {
        Some(
            self.0
                .get(name)?
                .ss
                .as_ref()?
                .iter()
                .map(String::as_str)
                .collect(),
        )
    }
}

impl StreamRecord {
    /// The job this record carries: a new job item, or None for anything else.
    pub fn job(&self) -> Option<Job> {
        if self.event_name.as_deref() != Some("INSERT") {
            return None;
        }
        let image = self.dynamodb.as_ref()?.new_image.as_ref()?;
        job_from_image(&Image(image))
    }

    /// The record's id in a partial-batch response (its sequence number).
    pub fn sequence_number(&self) -> Option<&str> {
        self.dynamodb.as_ref()?.sequence_number.as_deref()
    }

    /// The stream's event name (`INSERT`, `MODIFY`, `REMOVE`), for logs.
    pub fn event_name(&self) -> Option<&str> {
        self.event_name.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::super::connections::JOB_FRAME;

    /// The event source mapping's filter (template.yaml) must select the
    /// attribute job items carry, or no job ever reaches the worker.
    #[test]
    fn the_stream_filter_selects_job_items() {
        let template = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
        )
        .expect("template.yaml beside the workspace");
        let wanted = format!(r#""NewImage": {{"{JOB_FRAME}": {{"S": [{{"exists": true}}]}}}}"#);
        assert!(
            template.contains(&wanted),
            "template.yaml's stream filter does not select {JOB_FRAME}"
        );
    }
}
