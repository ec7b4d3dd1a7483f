//! WebSocket connections and fan-out jobs on DynamoDB
//! (the connections table).
//!
//! A connection is one item keyed by its id (`$disconnect` knows nothing
//! else), so connect is one PutItem and disconnect one DeleteItem. Fan-out
//! finds connections through four sparse global secondary indexes whose
//! keys start with the client id:
//!
//! | index        | key                    | projection          | used by |
//! |--------------|------------------------|---------------------|---------|
//! | `by_channel` | `gc` = client\|channel | keys, `expires_at`, `pi` | channel broadcasts, state/vote events, PIN revocation |
//! | `by_shard`   | `gx` = client\|0..15   | keys + `expires_at` | extension-wide jobs |
//! | `by_opaque`  | `go` = client\|opaque  | all                 | whispers |
//! | `by_user`    | `gu` = client\|user id | all                 | whispers by Twitch id |
//!
//! GameLink sessions live in the same table (see [`super::sessions`]).
//!
//! Attributes: `cl` client, `ch` channel, `ou` opaque id, `uid` user id, `ro`
//! role, `ca` connected at, `pi` present when a PIN-issued token connected. A job is
//! `<client>|job|<part>` / `<seq>|<nonce>` with the frame `fr` (see
//! `job_item`); the table's stream (filtered on `fr`) hands each job to its
//! own fan-out worker invocation, in order per partition key.

use aws_sdk_dynamodb::types::{PutRequest, ReturnValue, WriteRequest};

use super::DynamoStore;
use super::items::{Item, is_live, key, n, num, s, sdk_err, text};
use super::schema::{BY_CHANNEL, BY_OPAQUE, BY_SHARD, BY_USER};
use crate::auth::Role;
use crate::clock::now_secs;
use crate::error::StoreError;
use crate::gamelink::session::Session;
use crate::ids::{ChannelId, ClientId, ConnectionId, UserId, ViewerId};
use crate::realtime::Connection;
use crate::realtime::job::{GameUpdate, Job, JobPart, RelayTarget};
use crate::realtime::subscription::Subscription;
use crate::store::ConnectionStore;
use crate::store::layout::SINGLE;

/// Marks a connection made with a PIN-issued token (projected into `by_channel`).
pub const PIN_ISSUED: &str = "pi";
/// Jobs are delivered within a minute (older ones are dropped); the item is
/// kept an hour, past every retry.
const JOB_TTL_SECS: i64 = 3600;
/// The attributes of a job item: its extension, its frame, its part
/// (`c:<channel>`, `s:<shard>`, or `r` with the connection ids in
/// [`JOB_TO`]), when it was sent and which attempt it is. The table's stream
/// filter (template.yaml) selects new items that have [`JOB_FRAME`];
/// [`super::stream`] reads jobs back with [`job_from_image`].
pub const JOB_CLIENT: &str = "cl";
pub const JOB_FRAME: &str = "fr";
pub const JOB_PART: &str = "pt";
pub const JOB_SENT_AT: &str = "at";
pub const JOB_ATTEMPT: &str = "n";
pub const JOB_TO: &str = "to";
/// A job's games' update: the subscription (encoded) and its frame.
pub const JOB_GAMES_TO: &str = "gt";
pub const JOB_GAMES_FRAME: &str = "gf";

/// A job item's attributes as a stream record (or a test) holds them.
pub trait JobImage {
    /// A string attribute, or a number's decimal text.
    fn text(&self, name: &str) -> Option<&str>;
    /// A string set.
    fn strings(&self, name: &str) -> Option<Vec<&str>>;
}

fn conn_pk(id: &ConnectionId) -> String {
    format!("conn|{id}")
}

pub(super) fn joined(client: &ClientId, rest: &str) -> String {
    format!("{client}|{rest}")
}

fn conn_item(c: &Connection) -> Item {
    let mut item = key(&conn_pk(&c.id), SINGLE);
    let client = &c.client_id;
    item.insert("cl".into(), s(client.as_str()));
    item.insert("ro".into(), s(c.role.as_str()));
    item.insert("ca".into(), n(c.connected_at));
    item.insert("expires_at".into(), n(c.expires_at));
    item.insert("gx".into(), s(joined(client, &c.shard().to_string())));
    if c.pin_issued {
        item.insert(PIN_ISSUED.into(), n(1));
    }
    if let Some(ch) = &c.channel_id {
        item.insert("ch".into(), s(ch.as_str()));
        item.insert("gc".into(), s(joined(client, ch.as_str())));
    }
    if let Some(o) = &c.opaque_user_id {
        item.insert("ou".into(), s(o.as_str()));
        item.insert("go".into(), s(joined(client, o.as_str())));
    }
    if let Some(u) = &c.user_id {
        item.insert("uid".into(), s(u.as_str()));
        item.insert("gu".into(), s(joined(client, u.as_str())));
    }
    item
}

fn item_conn(item: &Item) -> Option<Connection> {
    let id = text(item, "pk")?.strip_prefix("conn|")?;
    let opt = |name| text(item, name);
    Some(Connection {
        id: ConnectionId::parse(id).ok()?,
        client_id: ClientId::parse(opt("cl")?).ok()?,
        channel_id: opt("ch").and_then(|c| ChannelId::parse(c).ok()),
        opaque_user_id: opt("ou").and_then(|o| ViewerId::parse(o).ok()),
        user_id: opt("uid").and_then(|u| UserId::parse(u).ok()),
        role: Role::parse(opt("ro")?)?,
        pin_issued: item.contains_key(PIN_ISSUED),
        connected_at: num(item, "ca")?,
        expires_at: num(item, "expires_at")?,
    })
}

fn item_conn_id(item: &Item) -> Option<ConnectionId> {
    ConnectionId::parse(text(item, "pk")?.strip_prefix("conn|")?).ok()
}

impl DynamoStore {
    /// Every live item of `index` under `value`, all pages.
    async fn query_index(
        &self,
        index: &str,
        attr: &str,
        value: String,
    ) -> Result<Vec<Item>, StoreError> {
        self.query_index_where(index, attr, value, None).await
    }

    /// [`query_index`](Self::query_index) keeping only the items that have
    /// the attribute `having`, when given.
    async fn query_index_where(
        &self,
        index: &str,
        attr: &str,
        value: String,
        having: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let now = now_secs();
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.tables.connections)
                .index_name(index)
                .key_condition_expression("#k = :v")
                .expression_attribute_names("#k", attr)
                .expression_attribute_values(":v", s(value.clone()))
                .set_filter_expression(having.map(|_| "attribute_exists(#h)".to_string()))
                .set_exclusive_start_key(start.take());
            if let Some(h) = having {
                query = query.expression_attribute_names("#h", h);
            }
            let page = query.send().await.map_err(sdk_err)?;
            out.extend(
                page.items
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|i| is_live(i, now)),
            );
            match page.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(out),
            }
        }
    }
}

impl ConnectionStore for DynamoStore {
    async fn add_connection(&self, c: &Connection) -> Result<(), StoreError> {
        self.put_item(&self.tables.connections, conn_item(c)).await
    }

    async fn remove_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.tables.connections)
            .set_key(Some(key(&conn_pk(id), SINGLE)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(sdk_err)?;
        let Some(old) = out.attributes else {
            return Ok(None);
        };
        // A game's session: its subscriptions go with it (they would expire
        // with it anyway, and meanwhile be found gone by every push).
        self.forget_subscriptions(&old).await?;
        Ok(item_conn(&old))
    }

    async fn channel_connections(
        &self,
        client: &ClientId,
        channel: &ChannelId,
    ) -> Result<Vec<ConnectionId>, StoreError> {
        let items = self
            .query_index(BY_CHANNEL, "gc", joined(client, channel.as_str()))
            .await?;
        Ok(items.iter().filter_map(item_conn_id).collect())
    }

    async fn viewer_connections(
        &self,
        client: &ClientId,
        viewer: &ViewerId,
    ) -> Result<Vec<Connection>, StoreError> {
        let value = joined(client, viewer.as_str());
        let (by_opaque, by_user) = tokio::try_join!(
            self.query_index(BY_OPAQUE, "go", value.clone()),
            self.query_index(BY_USER, "gu", value),
        )?;
        let mut conns: Vec<Connection> = by_opaque.iter().filter_map(item_conn).collect();
        for c in by_user.iter().filter_map(item_conn) {
            if !conns.iter().any(|k| k.id == c.id) {
                conns.push(c);
            }
        }
        Ok(conns)
    }

    async fn pin_connections(
        &self,
        client: &ClientId,
        channel: &ChannelId,
    ) -> Result<Vec<ConnectionId>, StoreError> {
        let items = self
            .query_index_where(
                BY_CHANNEL,
                "gc",
                joined(client, channel.as_str()),
                Some(PIN_ISSUED),
            )
            .await?;
        Ok(items.iter().filter_map(item_conn_id).collect())
    }

    async fn shard_connections(
        &self,
        client: &ClientId,
        shard: u32,
    ) -> Result<Vec<ConnectionId>, StoreError> {
        let items = self
            .query_index(BY_SHARD, "gx", joined(client, &shard.to_string()))
            .await?;
        Ok(items.iter().filter_map(item_conn_id).collect())
    }

    async fn queue_jobs(&self, jobs: &[Job]) -> Result<bool, StoreError> {
        if !self.fanout_queue || jobs.is_empty() {
            return Ok(false);
        }
        let exp = now_secs() + JOB_TTL_SECS;
        let requests = jobs
            .iter()
            .map(|job| {
                PutRequest::builder()
                    .set_item(Some(job_item(job, exp)))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
                    .map_err(|e| StoreError::Internal(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(&self.tables.connections, requests).await?;
        Ok(true)
    }

    async fn put_session(&self, session: &Session) -> Result<(), StoreError> {
        self.write_session(session).await
    }

    async fn session(&self, id: &ConnectionId) -> Result<Option<Session>, StoreError> {
        self.read_session(id).await
    }

    async fn subscribe(&self, session: &Session, sub: &Subscription) -> Result<bool, StoreError> {
        self.add_subscription(session, sub).await
    }

    async fn unsubscribe(&self, session: &Session, sub: &Subscription) -> Result<(), StoreError> {
        self.remove_subscription(session, sub).await
    }

    async fn subscribers(
        &self,
        client: &ClientId,
        sub: &Subscription,
    ) -> Result<Vec<ConnectionId>, StoreError> {
        self.list_subscribers(client, sub).await
    }
}

/// The partition key part of a job. A channel's jobs share one
/// (`<client>|job|c:<channel>`), and so do one shard's: Lambda processes a
/// stream's records in order per partition key, so a channel's events reach
/// its viewers in the order they were sent, while different channels and
/// the 16 shards of an extension-wide send run in parallel. A follow-up job
/// has a key of its own, so its backoff holds up no one.
fn job_part_key(part: &JobPart) -> String {
    match part {
        JobPart::Channel(ch) => format!("c:{ch}"),
        JobPart::Shard(n) => format!("s:{n}"),
        JobPart::Retry(_) => format!("r:{}", crate::random::token_id(16)),
        JobPart::Subscribers(sub) => format!("g:{}", sub.encode()),
        // A channel's relayed sends in order, whatever their topic: Twitch
        // joins fragments per topic, and the channel's budget is one.
        JobPart::Twitch(t) => format!("t:{}", t.channel().map_or("*", |c| c.as_str())),
    }
}

/// The item of one job: `<client>|job|<part>` / `<seq>|<nonce>` (in send
/// order within its partition), with the attributes [`job_from_image`] reads.
fn job_item(job: &Job, expires_at: i64) -> Item {
    let part_key = job_part_key(&job.part);
    let sort = format!(
        "{:020}|{}",
        crate::realtime::envelope::next_seq(),
        crate::random::token_id(8)
    );
    let mut item = key(&joined(&job.client_id, &format!("job|{part_key}")), &sort);
    let part = match &job.part {
        JobPart::Retry(ids) => {
            let ids = ids.iter().map(|i| i.as_str().to_string()).collect();
            item.insert(
                JOB_TO.into(),
                aws_sdk_dynamodb::types::AttributeValue::Ss(ids),
            );
            "r".to_string()
        }
        JobPart::Twitch(t) => format!("t:{}", t.encode()),
        _ => part_key,
    };
    item.insert(JOB_PART.into(), s(part));
    item.insert(JOB_CLIENT.into(), s(job.client_id.as_str()));
    item.insert(JOB_FRAME.into(), s(job.frame.clone()));
    if let Some(sent) = job.sent_at {
        item.insert(JOB_SENT_AT.into(), n(sent));
    }
    item.insert(JOB_ATTEMPT.into(), n(job.attempt as i64));
    if let Some(g) = &job.games {
        item.insert(JOB_GAMES_TO.into(), s(g.to.encode()));
        item.insert(JOB_GAMES_FRAME.into(), s(g.frame.clone()));
    }
    item.insert("expires_at".into(), n(expires_at));
    item
}

/// A job read back from its item's attributes (a stream record's new image).
/// A job queued before `pt` existed named its part in `sk` and had no send
/// time or attempt: it is still delivered.
pub(super) fn job_from_image(image: &dyn JobImage) -> Option<Job> {
    let part = image.text(JOB_PART).or_else(|| image.text("sk"))?;
    let part = match part {
        "r" => JobPart::Retry(
            image
                .strings(JOB_TO)?
                .into_iter()
                .map(ConnectionId::parse)
                .collect::<Result<_, _>>()
                .ok()?,
        ),
        other => match other.split_once(':')? {
            ("c", ch) => JobPart::Channel(ChannelId::parse(ch).ok()?),
            ("s", n) => JobPart::Shard(n.parse().ok()?),
            ("g", sub) => JobPart::Subscribers(Subscription::decode(sub)?),
            ("t", target) => JobPart::Twitch(RelayTarget::decode(target)?),
            _ => return None,
        },
    };
    Some(Job {
        client_id: ClientId::parse(image.text(JOB_CLIENT)?).ok()?,
        part,
        frame: image.text(JOB_FRAME)?.to_string(),
        sent_at: match image.text(JOB_SENT_AT) {
            Some(t) => Some(t.parse().ok()?),
            None => None,
        },
        attempt: match image.text(JOB_ATTEMPT) {
            Some(t) => t.parse().ok()?,
            None => 0,
        },
        games: match (image.text(JOB_GAMES_TO), image.text(JOB_GAMES_FRAME)) {
            (Some(to), Some(frame)) => Some(GameUpdate {
                to: Subscription::decode(to)?,
                frame: frame.to_string(),
            }),
            _ => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_survives_its_item_form() {
        let c = Connection {
            id: ConnectionId::parse("AbC12=").unwrap(),
            client_id: ClientId::parse("cid").unwrap(),
            channel_id: Some(ChannelId::parse("42").unwrap()),
            opaque_user_id: Some(ViewerId::parse("U9").unwrap()),
            user_id: Some(UserId::parse("777").unwrap()),
            role: Role::Viewer,
            pin_issued: false,
            connected_at: 10,
            expires_at: 7210,
        };
        let item = conn_item(&c);
        assert_eq!(item_conn(&item), Some(c.clone()));
        assert_eq!(item_conn_id(&item), Some(c.id));
        assert_eq!(text(&item, "gc"), Some("cid|42"));
    }

    struct Image(Item);

    impl JobImage for Image {
        fn text(&self, name: &str) -> Option<&str> {
            let v = self.0.get(name)?;
            v.as_s().or_else(|_| v.as_n()).ok().map(String::as_str)
        }
        fn strings(&self, name: &str) -> Option<Vec<&str>> {
            Some(
                self.0
                    .get(name)?
                    .as_ss()
                    .ok()?
                    .iter()
                    .map(String::as_str)
                    .collect(),
            )
        }
    }

    fn job(part: JobPart) -> Job {
        Job {
            client_id: ClientId::parse("cid").unwrap(),
            part,
            frame: "{}".into(),
            sent_at: Some(1_000),
            attempt: 2,
            games: None,
        }
    }

    #[test]
    fn jobs_survive_their_item_form() {
        let retry = JobPart::Retry(vec![
            ConnectionId::parse("a1").unwrap(),
            ConnectionId::parse("b2").unwrap(),
        ]);
        for part in [
            JobPart::Shard(7),
            JobPart::Channel(ChannelId::parse("42").unwrap()),
            JobPart::Subscribers(Subscription::channel(
                &ChannelId::parse("42").unwrap(),
                "state:channel",
            )),
            retry,
            JobPart::Twitch(RelayTarget::Global),
            JobPart::Twitch(RelayTarget::Channel(
                ChannelId::parse("42").unwrap(),
                crate::realtime::envelope::Topic::Whisper(ViewerId::parse("U9").unwrap()),
            )),
        ] {
            let j = job(part);
            assert_eq!(job_from_image(&Image(job_item(&j, 100))), Some(j));
        }
        // A channel's event with its games' update.
        let mut both = job(JobPart::Channel(ChannelId::parse("42").unwrap()));
        both.games = Some(GameUpdate {
            to: Subscription::channel(&ChannelId::parse("42").unwrap(), "state:channel"),
            frame: "{\"meta\":{}}".into(),
        });
        assert_eq!(job_from_image(&Image(job_item(&both, 100))), Some(both));
        let mut bad = job_item(&job(JobPart::Shard(1)), 100);
        bad.insert(JOB_PART.into(), s("x:1"));
        assert!(job_from_image(&Image(bad)).is_none());
        // A job in the layout before follow-ups: part in `sk`, no time.
        let mut old = Item::new();
        old.insert("sk".into(), s("c:42"));
        old.insert(JOB_CLIENT.into(), s("cid"));
        old.insert(JOB_FRAME.into(), s("{}"));
        let j = job_from_image(&Image(old)).unwrap();
        assert_eq!(
            (j.part, j.sent_at, j.attempt),
            (JobPart::Channel(ChannelId::parse("42").unwrap()), None, 0)
        );
    }

    /// Finding 2 of issue #19: every job had a random partition key, so two
    /// quick events of one channel could be processed in parallel and the
    /// older delivered last. A channel's (and a shard's) jobs now share a
    /// partition key, in send order; follow-ups have their own.
    #[test]
    fn a_channels_jobs_share_a_partition_in_send_order() {
        let ch = || JobPart::Channel(ChannelId::parse("42").unwrap());
        let (a, b) = (job_item(&job(ch()), 1), job_item(&job(ch()), 1));
        let pk = |i: &Item| text(i, "pk").unwrap().to_string();
        let sk = |i: &Item| text(i, "sk").unwrap().to_string();
        assert_eq!(pk(&a), pk(&b));
        assert!(sk(&a) < sk(&b), "the later job sorts after the earlier");
        let shards: std::collections::HashSet<String> = (0..16)
            .map(|n| pk(&job_item(&job(JobPart::Shard(n)), 1)))
            .collect();
        assert_eq!(
            shards.len(),
            16,
            "one extension-wide send's shards run in parallel"
        );
        // A channel's relayed sends, broadcast or whisper, queue in one
        // partition of their own (Twitch's budget is per channel).
        let relay = |t| {
            let target = RelayTarget::Channel(ChannelId::parse("42").unwrap(), t);
            pk(&job_item(&job(JobPart::Twitch(target)), 1))
        };
        use crate::realtime::envelope::Topic;
        let whisper = Topic::Whisper(ViewerId::parse("U1").unwrap());
        assert_eq!(relay(Topic::Broadcast), relay(whisper));
        assert_ne!(relay(Topic::Broadcast), pk(&a));
        let retry = || JobPart::Retry(vec![ConnectionId::parse("a").unwrap()]);
        assert_ne!(
            pk(&job_item(&job(retry()), 1)),
            pk(&job_item(&job(retry()), 1))
        );
    }
}
