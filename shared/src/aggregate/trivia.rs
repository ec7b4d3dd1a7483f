//! Trivia (the client's `curated_poll`): extension-wide questions with a state
//! machine, votes while unlocked, and a leaderboard of teams (a viewer's team
//! is the channel where they first voted). Pure rules; storage is the
//! question document plus rank tallies.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::ids::MAX_ID_LEN;

pub const MAX_QUESTIONS: usize = 64;
pub const MAX_OPTIONS: usize = 64;
/// Longest text field (name, description, image URL).
pub const MAX_TEXT: usize = 2048;

pub const INACTIVE: &str = "state-inactive";
pub const UNLOCKED: &str = "state-unlocked";
pub const LOCKED: &str = "state-locked";
pub const RESULTS: &str = "state-results";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriviaOption {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub short_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub short_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<i64>,
    #[serde(default)]
    pub options: Vec<TriviaOption>,
    #[serde(default = "inactive")]
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winner: Option<String>,
}

fn inactive() -> String {
    INACTIVE.into()
}

fn check_id(what: &str, id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(|c| c == '|' || c.is_control()) {
        return Err(ApiError::bad_request(format!(
            "{what} id must be 1..{MAX_ID_LEN} characters without '|' or control characters"
        )));
    }
    Ok(())
}

fn check_text(fields: &[(&str, &str)]) -> Result<(), ApiError> {
    for (name, text) in fields {
        if text.len() > MAX_TEXT {
            return Err(ApiError::bad_request(format!(
                "{name} is longer than {MAX_TEXT} bytes"
            )));
        }
    }
    Ok(())
}

impl TriviaOption {
    pub fn parse(v: &Value) -> Result<Self, ApiError> {
        let o: TriviaOption = serde_json::from_value(v.clone())
            .map_err(|e| ApiError::bad_request(format!("invalid trivia option: {e}")))?;
        o.validate()?;
        Ok(o)
    }

    fn validate(&self) -> Result<(), ApiError> {
        check_id("option", &self.id)?;
        check_text(&[
            ("name", &self.name),
            ("short_name", &self.short_name),
            ("description", &self.description),
            ("image", self.image.as_deref().unwrap_or("")),
        ])
    }
}

impl Question {
    /// A question from an edit body; its state and winner are not editable
    /// here (transitions do that).
    pub fn parse(v: &Value) -> Result<Self, ApiError> {
        let mut q: Question = serde_json::from_value(v.clone())
            .map_err(|e| ApiError::bad_request(format!("invalid trivia question: {e}")))?;
        check_id("question", &q.id)?;
        check_text(&[
            ("name", &q.name),
            ("short_name", &q.short_name),
            ("description", &q.description),
            ("image", q.image.as_deref().unwrap_or("")),
        ])?;
        if q.options.len() > MAX_OPTIONS {
            return Err(ApiError::bad_request(format!(
                "a question has at most {MAX_OPTIONS} options"
            )));
        }
        for o in &q.options {
            o.validate()?;
        }
        let mut ids: Vec<&str> = q.options.iter().map(|o| o.id.as_str()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(ApiError::bad_request("option ids must be unique"));
        }
        q.state = INACTIVE.into();
        q.winner = None;
        Ok(q)
    }

    pub fn has_option(&self, id: &str) -> bool {
        self.options.iter().any(|o| o.id == id)
    }

    pub fn is_visible_to_viewers(&self) -> bool {
        self.state != INACTIVE
    }

    /// Applies a `curated_poll_state` transition (409 when illegal).
    pub fn transition(&mut self, to: &str, winner: Option<&str>) -> Result<(), ApiError> {
        let from = self.state.as_str();
        let legal = match to {
            UNLOCKED => from == INACTIVE || from == LOCKED,
            LOCKED => from == UNLOCKED,
            // Revealing the answer while voting is open locks it implicitly.
            RESULTS => from == LOCKED || from == UNLOCKED,
            INACTIVE => from != INACTIVE,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown transition {other:?}; expected one of {INACTIVE}, {UNLOCKED}, {LOCKED}, {RESULTS}"
                )));
            }
        };
        if !legal {
            return Err(ApiError::conflict(format!(
                "a question in {from} cannot go to {to}"
            )));
        }
        if to == RESULTS {
            let w = winner.ok_or_else(|| {
                ApiError::bad_request("state-results needs a winner (an option id)")
            })?;
            if !self.has_option(w) {
                return Err(ApiError::bad_request(format!(
                    "the winner {w:?} is not an option of this question"
                )));
            }
            self.winner = Some(w.to_string());
        } else if to != LOCKED {
            // Reopening or hiding a question withdraws its announced winner.
            self.winner = None;
        }
        self.state = to.to_string();
        Ok(())
    }

    /// The question as a caller sees it, with `results`.
    pub fn view(&self, you: Option<&str>) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(obj) = v.as_object_mut() {
            obj.remove("winner");
            let mut results = serde_json::Map::new();
            if let Some(y) = you {
                results.insert("you".into(), json!(y));
            }
            if self.state == RESULTS
                && let Some(w) = &self.winner
            {
                results.insert("winner".into(), json!(w));
            }
            obj.insert("results".into(), Value::Object(results));
        }
        v
    }
}

/// The questions document: `{"questions": [...]}` in display order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Questions {
    #[serde(default)]
    pub questions: Vec<Question>,
}

impl Questions {
    pub fn from_doc(doc: Option<Value>) -> Result<Self, ApiError> {
        match doc {
            None => Ok(Questions::default()),
            Some(v) => serde_json::from_value(v).map_err(|e| {
                tracing::error!(error = %e, "stored trivia questions are malformed");
                ApiError::Internal
            }),
        }
    }

    pub fn to_doc(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    pub fn get(&self, id: &str) -> Option<&Question> {
        self.questions.iter().find(|q| q.id == id)
    }

    pub fn get_mut(&mut self, id: &str) -> Result<&mut Question, ApiError> {
        self.questions
            .iter_mut()
            .find(|q| q.id == id)
            .ok_or_else(|| ApiError::not_found(format!("no trivia question {id:?}")))
    }

    /// Inserts or replaces a question's content, keeping its state, winner
    /// and (when the edit names none) its options. 400 for a 65th question.
    pub fn upsert(&mut self, mut q: Question, options_given: bool) -> Result<&Question, ApiError> {
        let idx = match self.questions.iter().position(|x| x.id == q.id) {
            Some(i) => {
                let old = &self.questions[i];
                q.state = old.state.clone();
                q.winner = old.winner.clone();
                if !options_given {
                    q.options = old.options.clone();
                }
                self.questions[i] = q;
                i
            }
            None => {
                if self.questions.len() >= MAX_QUESTIONS {
                    return Err(ApiError::bad_request(format!(
                        "an extension has at most {MAX_QUESTIONS} trivia questions"
                    )));
                }
                self.questions.push(q);
                self.questions.len() - 1
            }
        };
        self.sort();
        let id = self.questions[idx].id.clone();
        Ok(self.get(&id).expect("just inserted"))
    }

    pub fn sort(&mut self) {
        self.questions.sort_by(|a, b| {
            a.order
                .unwrap_or(i64::MAX)
                .cmp(&b.order.unwrap_or(i64::MAX))
                .then(a.id.cmp(&b.id))
        });
    }
}

/// Separates team and option in a trivia tally key (neither contains it).
pub const TALLY_SEP: char = '\u{1f}';

pub fn tally_key(team: &str, option: &str) -> String {
    format!("{team}{TALLY_SEP}{option}")
}

/// One team's figures for one question.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeamQuestion {
    pub votes: i64,
    pub correct: i64,
}

/// The leaderboard from: team sizes, per-question tallies (`tally_key` →
/// count), and what each team's broadcaster answered.
pub fn leaderboard(
    questions: &Questions,
    team_sizes: &HashMap<String, i64>,
    tallies: &HashMap<String, Vec<(String, i64)>>,
    broadcaster_answers: &HashMap<String, HashMap<String, String>>,
) -> Value {
    // team → question → figures
    let mut teams: BTreeMap<String, BTreeMap<String, TeamQuestion>> = BTreeMap::new();
    for team in team_sizes.keys() {
        teams.entry(team.clone()).or_default();
    }
    for q in &questions.questions {
        let winner = q.winner.as_deref().filter(|_| q.state == RESULTS);
        for (key, n) in tallies.get(&q.id).map(Vec::as_slice).unwrap_or_default() {
            let Some((team, option)) = key.split_once(TALLY_SEP) else {
                continue;
            };
            let fig = teams
                .entry(team.to_string())
                .or_default()
                .entry(q.id.clone())
                .or_default();
            fig.votes += n;
            if winner == Some(option) {
                fig.correct += n;
            }
        }
    }
    let mut rows: Vec<(f64, Value)> = teams
        .into_iter()
        .map(|(team, per_q)| {
            let size = team_sizes.get(&team).copied().unwrap_or(0);
            let mut combined = 0.0;
            let mut out = serde_json::Map::new();
            for q in &questions.questions {
                let fig = per_q.get(&q.id).cloned().unwrap_or_default();
                let percent = if fig.votes > 0 {
                    100.0 * fig.correct as f64 / fig.votes as f64
                } else {
                    0.0
                };
                let decided = q.state == RESULTS && q.winner.is_some();
                if decided {
                    combined += percent;
                }
                let bc = broadcaster_answers
                    .get(&team)
                    .and_then(|a| a.get(&q.id))
                    .is_some_and(|a| decided && q.winner.as_deref() == Some(a.as_str()));
                let participation = if size > 0 {
                    100.0 * fig.votes as f64 / size as f64
                } else {
                    0.0
                };
                out.insert(
                    q.id.clone(),
                    json!({
                        "question_id": q.id,
                        "broadcaster_correct": bc,
                        "team_participation": participation,
                        "team_participants": fig.votes,
                        "percent_correct": percent,
                        "team_votes": fig.votes,
                        "score_values": [],
                    }),
                );
            }
            let row = json!({
                "team_id": team,
                "team_size": size,
                "combined_score": combined,
                "questions": out,
            });
            (combined, row)
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    json!({ "leaderboard": rows.into_iter().map(|(_, r)| r).collect::<Vec<_>>() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question() -> Question {
        Question::parse(&json!({
            "id": "q1", "name": "Best pet?",
            "options": [{"id": "cat", "name": "Cat"}, {"id": "dog", "name": "Dog"}]
        }))
        .unwrap()
    }

    #[test]
    fn questions_validate() {
        assert_eq!(question().state, INACTIVE);
        for bad in [
            json!({}),
            json!({"id": ""}),
            json!({"id": "a|b"}),
            json!({"id": "q", "options": [{"id": "a"}, {"id": "a"}]}),
            json!({"id": "q", "options": [{"name": "no id"}]}),
            json!({"id": "q", "name": "x".repeat(MAX_TEXT + 1)}),
        ] {
            assert!(Question::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn state_machine() {
        let mut q = question();
        assert!(q.transition(LOCKED, None).is_err(), "inactive → locked");
        assert!(q.transition(RESULTS, Some("cat")).is_err());
        q.transition(UNLOCKED, None).unwrap();
        assert!(q.transition(UNLOCKED, None).is_err());
        // Revealing while voting is open: allowed, and it closes voting.
        q.transition(RESULTS, Some("cat")).unwrap();
        assert_eq!(
            (q.state.as_str(), q.winner.as_deref()),
            (RESULTS, Some("cat"))
        );
        assert!(q.transition(LOCKED, None).is_err(), "results → locked");
        assert!(q.transition(UNLOCKED, None).is_err(), "results → unlocked");
        q.transition(INACTIVE, None).unwrap();
        assert_eq!(q.winner, None, "hiding withdraws the winner");
        q.transition(UNLOCKED, None).unwrap();
        q.transition(LOCKED, None).unwrap();
        let err = q.transition(RESULTS, None).unwrap_err();
        assert!(matches!(err, ApiError::BadRequest(_)));
        assert!(q.transition(RESULTS, Some("fish")).is_err());
        assert_eq!(q.state, LOCKED, "refused transitions change nothing");
        q.transition(RESULTS, Some("dog")).unwrap();
        assert_eq!(
            q.view(Some("cat"))["results"],
            json!({"you": "cat", "winner": "dog"})
        );
        q.transition(INACTIVE, None).unwrap();
        assert_eq!(q.winner, None);
        assert!(matches!(
            q.transition("state-bogus", None),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn at_most_64_questions() {
        let mut qs = Questions::default();
        for i in 0..MAX_QUESTIONS {
            let q = Question::parse(&json!({"id": format!("q{i}")})).unwrap();
            qs.upsert(q, false).unwrap();
        }
        let extra = Question::parse(&json!({"id": "one-too-many"})).unwrap();
        assert!(qs.upsert(extra, false).is_err());
        // Editing an existing one is still fine and keeps its state.
        qs.get_mut("q3").unwrap().state = UNLOCKED.into();
        let edit = Question::parse(&json!({"id": "q3", "name": "renamed"})).unwrap();
        let q = qs.upsert(edit, false).unwrap();
        assert_eq!((q.name.as_str(), q.state.as_str()), ("renamed", UNLOCKED));
    }

    #[test]
    fn leaderboard_scores_teams() {
        let mut qs = Questions::default();
        let mut q = question();
        q.transition(UNLOCKED, None).unwrap();
        q.transition(LOCKED, None).unwrap();
        q.transition(RESULTS, Some("dog")).unwrap();
        qs.questions.push(q);
        let sizes = HashMap::from([("10".to_string(), 4), ("20".to_string(), 1)]);
        let tallies = HashMap::from([(
            "q1".to_string(),
            vec![
                (tally_key("10", "dog"), 3),
                (tally_key("10", "cat"), 1),
                (tally_key("20", "cat"), 1),
            ],
        )]);
        let bc = HashMap::from([(
            "10".to_string(),
            HashMap::from([("q1".to_string(), "dog".to_string())]),
        )]);
        let board = leaderboard(&qs, &sizes, &tallies, &bc);
        let rows = board["leaderboard"].as_array().unwrap();
        assert_eq!(rows[0]["team_id"], "10");
        assert_eq!(rows[0]["combined_score"], 75.0);
        let fig = &rows[0]["questions"]["q1"];
        assert_eq!(fig["team_votes"], 4);
        assert_eq!(fig["percent_correct"], 75.0);
        assert_eq!(fig["team_participation"], 100.0);
        assert_eq!(fig["broadcaster_correct"], true);
        assert_eq!(rows[1]["questions"]["q1"]["percent_correct"], 0.0);
    }
}
