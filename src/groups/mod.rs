//! Consumer groups: Kafka's classic group protocol and committed offsets.
//!
//! A group lives on one shard, chosen by a hash of its id; every other shard forwards that
//! group's requests to it over a bounded channel and awaits the answer. The owning shard's
//! [`Coordinator`] keeps the group's live state (members waiting at the rebalance barrier,
//! session timers) and stores what must survive it in the metadata store: the group's state
//! whenever it becomes stable or empty, and every committed offset. After a restart, or on
//! another agent, the group is loaded from there.

pub mod group;
pub mod persist;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::ResponseError;

use crate::metadata::{CommittedOffset, MetadataClient, StoredGroup};
use group::{
    Answer, Effect, Group, GroupConfig, GroupState, JoinParams, JoinResult, SyncParams, SyncResult,
};
use persist::StoredState;

/// An operation on one group, run by the shard that owns it.
#[derive(Debug)]
pub enum GroupOp {
    Join(JoinParams),
    Sync(SyncParams),
    Heartbeat {
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
    },
    Leave(Vec<(String, Option<String>)>),
    Commit {
        member_id: String,
        instance_id: Option<String>,
        generation: i32,
        offsets: Vec<CommittedOffset>,
    },
    Describe,
    Delete,
    /// Deletes offsets; answers an error code per partition.
    DeleteOffsets(Vec<(String, i32)>),
    /// State and protocol type, for ListGroups.
    State,
}

/// A member as DescribeGroups shows it.
#[derive(Clone, Debug)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Clone, Debug)]
pub struct GroupDescription {
    /// Kafka's state name; "Dead" for a group that does not exist.
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Debug)]
pub enum GroupReply {
    Join(JoinResult),
    Sync(SyncResult),
    Code(i16),
    Codes(Vec<i16>),
    Described(GroupDescription),
    /// (state name, protocol type), or None if the group does not exist.
    State(Option<(String, String)>),
}

/// A forwarded operation and where to send its answer.
pub struct GroupCall {
    pub group_id: String,
    pub op: GroupOp,
    pub reply: oneshot::Sender<GroupReply>,
}

/// The shard that owns a group. A stable hash, so every shard (and later every agent) agrees.
pub fn owner_shard(group_id: &str, shards: usize) -> usize {
    crc32c::crc32c(group_id.as_bytes()) as usize % shards.max(1)
}

/// A shard's way to reach the owner of any group.
pub struct GroupRouter {
    shard_id: usize,
    senders: Vec<flume::Sender<GroupCall>>,
    pub local: Rc<Coordinator>,
}

impl GroupRouter {
    pub fn new(
        shard_id: usize,
        senders: Vec<flume::Sender<GroupCall>>,
        local: Rc<Coordinator>,
    ) -> GroupRouter {
        GroupRouter {
            shard_id,
            senders,
            local,
        }
    }

    /// Runs `op` on the group's owning shard and waits for the answer.
    pub async fn call(&self, group_id: &str, op: GroupOp) -> GroupReply {
        let owner = owner_shard(group_id, self.senders.len());
        if owner == self.shard_id {
            return self.local.handle(group_id, op).await;
        }
        let (tx, rx) = oneshot::channel();
        let call = GroupCall {
            group_id: group_id.to_string(),
            op,
            reply: tx,
        };
        if self.senders[owner].send_async(call).await.is_err() {
            return GroupReply::Code(ResponseError::CoordinatorNotAvailable.code());
        }
        rx.await.unwrap_or(GroupReply::Code(
            ResponseError::CoordinatorNotAvailable.code(),
        ))
    }
}

struct Entry {
    group: Group,
    /// Whether the group exists for clients: stored, or used since it was loaded.
    known: bool,
    joins: HashMap<String, oneshot::Sender<JoinResult>>,
    syncs: HashMap<String, oneshot::Sender<SyncResult>>,
}

/// The groups a shard owns.
pub struct Coordinator {
    groups: RefCell<HashMap<String, Entry>>,
    metadata: MetadataClient,
    config: GroupConfig,
}

/// How often the coordinator checks sessions and rebalance deadlines.
const TICK: Duration = Duration::from_millis(100);

impl Coordinator {
    pub fn new(metadata: MetadataClient, config: GroupConfig) -> Rc<Coordinator> {
        Rc::new(Coordinator {
            groups: RefCell::new(HashMap::new()),
            metadata,
            config,
        })
    }

    /// Serves forwarded calls and runs the session and rebalance timer, until the shard stops.
    pub fn start(self: &Rc<Self>, calls: flume::Receiver<GroupCall>) {
        let this = self.clone();
        glommio::spawn_local(async move {
            while let Ok(call) = calls.recv_async().await {
                let this = this.clone();
                glommio::spawn_local(async move {
                    let reply = this.handle(&call.group_id, call.op).await;
                    let _ = call.reply.send(reply);
                })
                .detach();
            }
        })
        .detach();
        let this = self.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(TICK).await;
                this.tick(Instant::now());
            }
        })
        .detach();
    }

    fn tick(&self, now: Instant) {
        let mut groups = self.groups.borrow_mut();
        for entry in groups.values_mut() {
            if entry.group.next_deadline().is_some_and(|d| d <= now) {
                let mut effects = Vec::new();
                entry.group.poll(now, &mut effects);
                self.apply(entry, effects);
            }
        }
    }

    /// Loads a group from the metadata store the first time this shard sees it.
    async fn ensure_loaded(&self, group_id: &str) {
        if self.groups.borrow().contains_key(group_id) {
            return;
        }
        let id = group_id.to_string();
        let stored = self
            .metadata
            .call("load_group", move |b| b.load_group(&id))
            .await;
        let now = Instant::now();
        let (group, known) = match stored {
            Ok(Some(s)) => match persist::decode(&s.state) {
                Some(state) => (Group::restore(self.config, state, now), true),
                None => {
                    tracing::error!(
                        group = group_id,
                        "stored group state is corrupt; starting empty"
                    );
                    (Group::new(group_id, self.config), true)
                }
            },
            Ok(None) => (Group::new(group_id, self.config), false),
            Err(e) => {
                tracing::warn!(group = group_id, error = %e, "cannot load group; starting empty");
                (Group::new(group_id, self.config), false)
            }
        };
        self.groups
            .borrow_mut()
            .entry(group_id.to_string())
            .or_insert(Entry {
                group,
                known,
                joins: HashMap::new(),
                syncs: HashMap::new(),
            });
    }

    /// Delivers answers to waiting requests and stores the group when its state changed.
    fn apply(&self, entry: &mut Entry, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Join(member, result) => {
                    if let Some(tx) = entry.joins.remove(&member) {
                        let _ = tx.send(result);
                    }
                }
                Effect::Sync(member, result) => {
                    if let Some(tx) = entry.syncs.remove(&member) {
                        let _ = tx.send(result);
                    }
                }
                Effect::Persist => self.persist(&entry.group),
            }
        }
    }

    fn persist(&self, group: &Group) {
        let stored = StoredGroup {
            group_id: group.id.clone(),
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            state: persist::encode(&StoredState::of(group)),
        };
        let metadata = self.metadata.clone();
        let group_id = group.id.clone();
        // Stores are queued in order on the metadata thread, so the last state wins.
        glommio::spawn_local(async move {
            if let Err(e) = metadata
                .call("save_group", move |b| b.save_group(&stored))
                .await
            {
                tracing::warn!(group = group_id, error = %e, "storing group state failed");
            }
        })
        .detach();
    }

    pub async fn handle(&self, group_id: &str, op: GroupOp) -> GroupReply {
        self.ensure_loaded(group_id).await;
        let now = Instant::now();
        match op {
            GroupOp::Join(p) => {
                let rx = {
                    let mut groups = self.groups.borrow_mut();
                    let entry = groups.get_mut(group_id).expect("loaded above");
                    entry.known = true;
                    let mut effects = Vec::new();
                    match entry.group.join(now, p, &mut effects) {
                        Answer::Now(r) => {
                            self.apply(entry, effects);
                            return GroupReply::Join(r);
                        }
                        Answer::Wait(member) => {
                            let (tx, rx) = oneshot::channel();
                            // A retried join replaces the older one, which is dropped.
                            entry.joins.insert(member, tx);
                            self.apply(entry, effects);
                            rx
                        }
                    }
                };
                GroupReply::Join(rx.await.unwrap_or_else(|_| JoinResult {
                    error: ResponseError::RebalanceInProgress.code(),
                    generation: -1,
                    protocol_type: None,
                    protocol_name: None,
                    leader: String::new(),
                    member_id: String::new(),
                    members: Vec::new(),
                }))
            }
            GroupOp::Sync(p) => {
                let rx = {
                    let mut groups = self.groups.borrow_mut();
                    let entry = groups.get_mut(group_id).expect("loaded above");
                    let mut effects = Vec::new();
                    match entry.group.sync(now, p, &mut effects) {
                        Answer::Now(r) => {
                            self.apply(entry, effects);
                            return GroupReply::Sync(r);
                        }
                        Answer::Wait(member) => {
                            let (tx, rx) = oneshot::channel();
                            entry.syncs.insert(member, tx);
                            self.apply(entry, effects);
                            rx
                        }
                    }
                };
                GroupReply::Sync(rx.await.unwrap_or(SyncResult {
                    error: ResponseError::RebalanceInProgress.code(),
                    protocol_type: None,
                    protocol_name: None,
                    assignment: Bytes::new(),
                }))
            }
            GroupOp::Heartbeat {
                member_id,
                instance_id,
                generation,
            } => {
                let mut groups = self.groups.borrow_mut();
                let entry = groups.get_mut(group_id).expect("loaded above");
                GroupReply::Code(entry.group.heartbeat(
                    now,
                    &member_id,
                    instance_id.as_deref(),
                    generation,
                ))
            }
            GroupOp::Leave(members) => {
                let mut groups = self.groups.borrow_mut();
                let entry = groups.get_mut(group_id).expect("loaded above");
                let mut effects = Vec::new();
                let codes = entry.group.leave(now, &members, &mut effects);
                self.apply(entry, effects);
                GroupReply::Codes(codes)
            }
            GroupOp::Commit {
                member_id,
                instance_id,
                generation,
                offsets,
            } => {
                let code = {
                    let mut groups = self.groups.borrow_mut();
                    let entry = groups.get_mut(group_id).expect("loaded above");
                    let code = entry.group.check_commit(
                        now,
                        &member_id,
                        instance_id.as_deref(),
                        generation,
                    );
                    if code == 0 {
                        entry.known = true;
                    }
                    code
                };
                if code != 0 {
                    return GroupReply::Code(code);
                }
                let id = group_id.to_string();
                match self
                    .metadata
                    .call("commit_offsets", move |b| b.commit_offsets(&id, &offsets))
                    .await
                {
                    Ok(()) => GroupReply::Code(0),
                    Err(e) => GroupReply::Code(crate::server::errors::metadata_error_code(&e)),
                }
            }
            GroupOp::Describe => {
                let groups = self.groups.borrow();
                let entry = groups.get(group_id).expect("loaded above");
                GroupReply::Described(describe(entry))
            }
            GroupOp::State => {
                let groups = self.groups.borrow();
                let entry = groups.get(group_id).expect("loaded above");
                GroupReply::State(entry.known.then(|| {
                    (
                        entry.group.state.name().to_string(),
                        entry.group.protocol_type.clone().unwrap_or_default(),
                    )
                }))
            }
            GroupOp::Delete => {
                {
                    let groups = self.groups.borrow();
                    let entry = groups.get(group_id).expect("loaded above");
                    if entry.group.state != GroupState::Empty {
                        return GroupReply::Code(ResponseError::NonEmptyGroup.code());
                    }
                }
                let id = group_id.to_string();
                match self
                    .metadata
                    .call("delete_group", move |b| b.delete_group(&id))
                    .await
                {
                    Ok(existed) => {
                        let mut groups = self.groups.borrow_mut();
                        let was_known = groups.remove(group_id).is_some_and(|e| e.known);
                        if existed || was_known {
                            GroupReply::Code(0)
                        } else {
                            GroupReply::Code(ResponseError::GroupIdNotFound.code())
                        }
                    }
                    Err(e) => GroupReply::Code(crate::server::errors::metadata_error_code(&e)),
                }
            }
            GroupOp::DeleteOffsets(partitions) => {
                let subscribed = {
                    let groups = self.groups.borrow();
                    let entry = groups.get(group_id).expect("loaded above");
                    if !entry.known {
                        return GroupReply::Code(ResponseError::GroupIdNotFound.code());
                    }
                    subscribed_topics(&entry.group)
                };
                let mut codes = Vec::with_capacity(partitions.len());
                let mut deletable = Vec::new();
                for (topic, partition) in partitions {
                    if subscribed.contains(&topic) {
                        codes.push(ResponseError::GroupSubscribedToTopic.code());
                    } else {
                        codes.push(0);
                        deletable.push((topic, partition));
                    }
                }
                let id = group_id.to_string();
                match self
                    .metadata
                    .call("delete_offsets", move |b| b.delete_offsets(&id, &deletable))
                    .await
                {
                    Ok(()) => GroupReply::Codes(codes),
                    Err(e) => GroupReply::Code(crate::server::errors::metadata_error_code(&e)),
                }
            }
        }
    }
}

fn describe(entry: &Entry) -> GroupDescription {
    let g = &entry.group;
    if !entry.known {
        return GroupDescription {
            state: "Dead".to_string(),
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        };
    }
    let protocol = g.protocol.clone().unwrap_or_default();
    let stable = g.state == GroupState::Stable;
    GroupDescription {
        state: g.state.name().to_string(),
        protocol_type: g.protocol_type.clone().unwrap_or_default(),
        protocol: if stable || g.state == GroupState::CompletingRebalance {
            protocol.clone()
        } else {
            String::new()
        },
        members: g
            .members
            .iter()
            .map(|m| MemberDescription {
                member_id: m.member_id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: m
                    .protocols
                    .iter()
                    .find(|(n, _)| *n == protocol)
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default(),
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect(),
    }
}

/// Topics the members of a consumer group subscribe to, from their subscription metadata.
fn subscribed_topics(g: &Group) -> Vec<String> {
    use bytes::Buf;
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Decodable;
    if g.protocol_type.as_deref() != Some("consumer") || g.state == GroupState::Empty {
        return Vec::new();
    }
    let protocol = g.protocol.clone().unwrap_or_default();
    let mut topics = Vec::new();
    for m in &g.members {
        let Some((_, meta)) = m.protocols.iter().find(|(n, _)| *n == protocol) else {
            continue;
        };
        let mut buf = meta.clone();
        if buf.remaining() < 2 {
            continue;
        }
        let version = buf.get_i16();
        // Versions newer than the codec knows still start with the same topic list.
        if let Ok(sub) = ConsumerProtocolSubscription::decode(&mut buf, version.min(3)) {
            topics.extend(sub.topics.into_iter().map(|t| t.to_string()));
        }
    }
    topics.sort();
    topics.dedup();
    topics
}
