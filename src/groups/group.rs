//! One consumer group under Kafka's classic rebalance protocol, as a sans-IO state machine.
//!
//! It takes the clock as an argument and never touches glommio. Requests that must wait for
//! the rebalance barrier (JoinGroup, SyncGroup) return `Wait`; the answers come later as
//! [`Effect`]s, which the driver routes to the waiting requests by member id. The driver calls
//! [`Group::poll`] after every request and on a timer, so that sessions expire and rebalances
//! complete on time.
//!
//! States follow Kafka: Empty → PreparingRebalance → CompletingRebalance → Stable, back to
//! PreparingRebalance when membership or subscriptions change.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// Coordinator settings (Kafka's `group.*` broker configs).
#[derive(Clone, Copy, Debug)]
pub struct GroupConfig {
    pub session_timeout_min: Duration,
    pub session_timeout_max: Duration,
    /// How long the first rebalance of an empty group waits for more members.
    pub initial_rebalance_delay: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    /// (protocol name, subscription metadata), in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_seen: Instant,
    pub awaiting_join: bool,
    pub awaiting_sync: bool,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

#[derive(Clone, Debug)]
pub struct JoinParams {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new dynamic member first gets a member id and must join again with it.
    pub require_known_member_id: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    fn error(code: ResponseError, member_id: &str) -> JoinResult {
        JoinResult {
            error: code.code(),
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SyncParams {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    fn error(code: ResponseError) -> SyncResult {
        SyncResult {
            error: code.code(),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// An answer given now, or a promise of one through an [`Effect`] for this member id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer<T> {
    Now(T),
    Wait(String),
}

/// Something the driver must do after a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Answer this member's waiting JoinGroup.
    Join(String, JoinResult),
    /// Answer this member's waiting SyncGroup.
    Sync(String, SyncResult),
    /// The group's durable state changed: store it.
    Persist,
}

#[derive(Clone, Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// Members in join order; the first one to join leads when the leader is gone.
    pub members: Vec<Member>,
    /// Member ids handed out by MEMBER_ID_REQUIRED, with when they expire.
    pending: HashMap<String, Instant>,
    /// When the current rebalance completes even if members are missing.
    rebalance_deadline: Option<Instant>,
    /// The first rebalance of an empty group waits this long for more members.
    initial_delay_until: Option<Instant>,
    config: GroupConfig,
}

impl Group {
    pub fn new(id: &str, config: GroupConfig) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending: HashMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
            config,
        }
    }

    fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.member_id == id)
    }

    fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.member_id == id)
    }

    fn static_member(&self, instance_id: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
    }

    /// The protocols every member (and a joining one) supports.
    fn common_protocols<'a>(&'a self, extra: Option<&'a [(String, Bytes)]>) -> Vec<&'a str> {
        let mut lists: Vec<&[(String, Bytes)]> = self
            .members
            .iter()
            .map(|m| m.protocols.as_slice())
            .collect();
        if let Some(e) = extra {
            lists.push(e);
        }
        let Some(first) = lists.first() else {
            return Vec::new();
        };
        first
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| lists.iter().all(|l| l.iter().any(|(m, _)| m == n)))
            .collect()
    }

    /// Picks the protocol as Kafka does: each member votes for its most preferred protocol
    /// among those all support; the most votes win, ties going to the first candidate.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.common_protocols(None);
        let mut votes: Vec<(&str, usize)> = candidates.iter().map(|c| (*c, 0)).collect();
        for m in &self.members {
            if let Some((name, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n.as_str()))
            {
                if let Some(v) = votes.iter_mut().find(|(c, _)| c == name) {
                    v.1 += 1;
                }
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for v in votes {
            if best.is_none_or(|b| v.1 > b.1) {
                best = Some(v);
            }
        }
        best.map(|(n, _)| n.to_string())
    }

    pub fn join(
        &mut self,
        now: Instant,
        p: JoinParams,
        effects: &mut Vec<Effect>,
    ) -> Answer<JoinResult> {
        if p.session_timeout < self.config.session_timeout_min
            || p.session_timeout > self.config.session_timeout_max
        {
            return Answer::Now(JoinResult::error(
                ResponseError::InvalidSessionTimeout,
                &p.member_id,
            ));
        }
        if p.protocol_type.is_empty() || p.protocols.is_empty() {
            return Answer::Now(JoinResult::error(
                ResponseError::InconsistentGroupProtocol,
                &p.member_id,
            ));
        }
        if !self.members.is_empty() {
            let type_ok = self.protocol_type.as_deref() == Some(p.protocol_type.as_str());
            // An existing member may change its own protocols: check against the others.
            let others_ok = {
                let mut g = self.clone();
                g.members.retain(|m| m.member_id != p.member_id);
                g.members.is_empty() || !g.common_protocols(Some(&p.protocols)).is_empty()
            };
            if !type_ok || !others_ok {
                return Answer::Now(JoinResult::error(
                    ResponseError::InconsistentGroupProtocol,
                    &p.member_id,
                ));
            }
        }

        if p.member_id.is_empty() {
            return self.join_new_member(now, p, effects);
        }
        if self.pending.remove(&p.member_id).is_some() {
            let id = p.member_id.clone();
            self.add_member(now, id.clone(), p, effects);
            return self.wait_join(now, id, effects);
        }
        let Some(existing) = self.member(&p.member_id) else {
            return Answer::Now(JoinResult::error(
                ResponseError::UnknownMemberId,
                &p.member_id,
            ));
        };
        if let Some(instance) = &p.instance_id {
            if existing.instance_id.as_deref() != Some(instance.as_str()) {
                return Answer::Now(JoinResult::error(
                    ResponseError::FencedInstanceId,
                    &p.member_id,
                ));
            }
        }
        let same_protocols = existing.protocols == p.protocols;
        let is_leader = self.leader.as_deref() == Some(p.member_id.as_str());
        {
            let m = self.member_mut(&p.member_id).expect("checked above");
            m.protocols = p.protocols;
            m.session_timeout = p.session_timeout;
            m.rebalance_timeout = p.rebalance_timeout;
            m.last_seen = now;
            m.awaiting_join = true;
        }
        let id = p.member_id;
        match self.state {
            GroupState::PreparingRebalance => self.wait_join(now, id, effects),
            GroupState::CompletingRebalance | GroupState::Stable
                if same_protocols && !(is_leader && self.state == GroupState::Stable) =>
            {
                // A repeated join with unchanged metadata (a lost answer): the current
                // generation stands.
                self.member_mut(&id).expect("checked above").awaiting_join = false;
                Answer::Now(self.join_result_for(&id))
            }
            _ => {
                self.prepare_rebalance(now, effects);
                self.wait_join(now, id, effects)
            }
        }
    }

    fn join_new_member(
        &mut self,
        now: Instant,
        p: JoinParams,
        effects: &mut Vec<Effect>,
    ) -> Answer<JoinResult> {
        let new_id = format!(
            "{}-{}",
            p.instance_id.as_deref().unwrap_or(&p.client_id),
            uuid::Uuid::new_v4()
        );
        if let Some(instance) = p.instance_id.clone() {
            if let Some(old) = self.static_member(&instance).cloned() {
                // A static member restarting: it takes over its old identity and assignment.
                // The old member id is fenced from now on.
                if old.awaiting_join {
                    effects.push(Effect::Join(
                        old.member_id.clone(),
                        JoinResult::error(ResponseError::FencedInstanceId, &old.member_id),
                    ));
                }
                if old.awaiting_sync {
                    effects.push(Effect::Sync(
                        old.member_id.clone(),
                        SyncResult::error(ResponseError::FencedInstanceId),
                    ));
                }
                let unchanged = old.protocols == p.protocols;
                let m = self.member_mut(&old.member_id).expect("found above");
                m.member_id = new_id.clone();
                m.client_id = p.client_id.clone();
                m.client_host = p.client_host.clone();
                m.session_timeout = p.session_timeout;
                m.rebalance_timeout = p.rebalance_timeout;
                m.protocols = p.protocols.clone();
                m.last_seen = now;
                m.awaiting_join = false;
                m.awaiting_sync = false;
                if self.leader.as_deref() == Some(old.member_id.as_str()) {
                    self.leader = Some(new_id.clone());
                }
                if self.state == GroupState::Stable && unchanged {
                    effects.push(Effect::Persist);
                    return Answer::Now(self.join_result_for(&new_id));
                }
                self.member_mut(&new_id).expect("renamed").awaiting_join = true;
                self.prepare_rebalance(now, effects);
                return self.wait_join(now, new_id, effects);
            }
            self.add_member(now, new_id.clone(), p, effects);
            return self.wait_join(now, new_id, effects);
        }
        if p.require_known_member_id {
            self.pending.insert(new_id.clone(), now + p.session_timeout);
            return Answer::Now(JoinResult::error(ResponseError::MemberIdRequired, &new_id));
        }
        self.add_member(now, new_id.clone(), p, effects);
        self.wait_join(now, new_id, effects)
    }

    fn add_member(
        &mut self,
        now: Instant,
        member_id: String,
        p: JoinParams,
        effects: &mut Vec<Effect>,
    ) {
        if self.members.is_empty() {
            self.protocol_type = Some(p.protocol_type.clone());
        }
        self.members.push(Member {
            member_id,
            instance_id: p.instance_id,
            client_id: p.client_id,
            client_host: p.client_host,
            session_timeout: p.session_timeout,
            rebalance_timeout: p.rebalance_timeout,
            protocols: p.protocols,
            assignment: Bytes::new(),
            last_seen: now,
            awaiting_join: true,
            awaiting_sync: false,
        });
        if self.state == GroupState::Empty {
            // The first rebalance waits a little for the rest of the group to arrive.
            self.initial_delay_until = Some(now + self.config.initial_rebalance_delay);
        } else if let Some(until) = self.initial_delay_until {
            // Each new member extends the initial delay, within the rebalance timeout.
            let extended = now + self.config.initial_rebalance_delay;
            let cap = self.rebalance_deadline.unwrap_or(extended);
            self.initial_delay_until = Some(until.max(extended.min(cap)));
        }
        self.prepare_rebalance(now, effects);
    }

    fn prepare_rebalance(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        if self.state == GroupState::CompletingRebalance {
            // Assignments of the generation being completed are void.
            for m in &mut self.members {
                m.assignment = Bytes::new();
                if m.awaiting_sync {
                    m.awaiting_sync = false;
                    effects.push(Effect::Sync(
                        m.member_id.clone(),
                        SyncResult::error(ResponseError::RebalanceInProgress),
                    ));
                }
            }
        }
        if self.state != GroupState::PreparingRebalance {
            let timeout = self
                .members
                .iter()
                .map(|m| m.rebalance_timeout)
                .max()
                .unwrap_or_default();
            self.rebalance_deadline = Some(now + timeout);
            self.state = GroupState::PreparingRebalance;
        }
    }

    /// The join of `member_id` is answered through an effect, possibly at once by `poll`.
    fn wait_join(
        &mut self,
        now: Instant,
        member_id: String,
        effects: &mut Vec<Effect>,
    ) -> Answer<JoinResult> {
        self.poll(now, effects);
        Answer::Wait(member_id)
    }

    fn join_result_for(&self, member_id: &str) -> JoinResult {
        let protocol = self.protocol.clone().unwrap_or_default();
        let is_leader = self.leader.as_deref() == Some(member_id);
        JoinResult {
            error: 0,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if is_leader {
                self.members
                    .iter()
                    .map(|m| JoinedMember {
                        member_id: m.member_id.clone(),
                        instance_id: m.instance_id.clone(),
                        metadata: m.metadata_for(&protocol),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Completes the join phase when every member has rejoined (and the initial delay is
    /// over), or when the rebalance timeout has passed; members that did not rejoin leave.
    fn maybe_complete_join(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.members.iter().all(|m| m.awaiting_join);
        let delayed = self.initial_delay_until.is_some_and(|t| now < t);
        let timed_out = self.rebalance_deadline.is_some_and(|t| now >= t);
        if !(timed_out || (all_joined && !delayed)) {
            return;
        }
        self.members.retain(|m| m.awaiting_join);
        self.initial_delay_until = None;
        self.rebalance_deadline = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            effects.push(Effect::Persist);
            return;
        }
        self.protocol = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.iter().any(|m| &m.member_id == l))
        {
            self.leader = Some(self.members[0].member_id.clone());
        }
        self.state = GroupState::CompletingRebalance;
        let ids: Vec<String> = self.members.iter().map(|m| m.member_id.clone()).collect();
        for id in ids {
            let result = self.join_result_for(&id);
            let m = self.member_mut(&id).expect("listed above");
            m.awaiting_join = false;
            m.last_seen = now;
            effects.push(Effect::Join(id, result));
        }
    }

    pub fn sync(
        &mut self,
        now: Instant,
        p: SyncParams,
        effects: &mut Vec<Effect>,
    ) -> Answer<SyncResult> {
        let Some(member) = self.member(&p.member_id) else {
            return Answer::Now(SyncResult::error(ResponseError::UnknownMemberId));
        };
        if p.instance_id.is_some() && member.instance_id != p.instance_id {
            return Answer::Now(SyncResult::error(ResponseError::FencedInstanceId));
        }
        if p.generation != self.generation {
            return Answer::Now(SyncResult::error(ResponseError::IllegalGeneration));
        }
        let type_mismatch = p
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref());
        let name_mismatch = p
            .protocol_name
            .as_ref()
            .is_some_and(|n| Some(n) != self.protocol.as_ref());
        if type_mismatch || name_mismatch {
            return Answer::Now(SyncResult::error(ResponseError::InconsistentGroupProtocol));
        }
        match self.state {
            GroupState::Empty => Answer::Now(SyncResult::error(ResponseError::UnknownMemberId)),
            GroupState::PreparingRebalance => {
                Answer::Now(SyncResult::error(ResponseError::RebalanceInProgress))
            }
            GroupState::Stable => {
                let m = self.member_mut(&p.member_id).expect("checked above");
                m.last_seen = now;
                let assignment = m.assignment.clone();
                Answer::Now(self.sync_ok(assignment))
            }
            GroupState::CompletingRebalance => {
                {
                    let m = self.member_mut(&p.member_id).expect("checked above");
                    m.last_seen = now;
                    m.awaiting_sync = true;
                }
                if self.leader.as_deref() == Some(p.member_id.as_str()) {
                    for m in &mut self.members {
                        m.assignment = p
                            .assignments
                            .iter()
                            .find(|(id, _)| *id == m.member_id)
                            .map(|(_, a)| a.clone())
                            .unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    effects.push(Effect::Persist);
                    let waiting: Vec<(String, Bytes)> = self
                        .members
                        .iter_mut()
                        .filter(|m| m.awaiting_sync)
                        .map(|m| {
                            m.awaiting_sync = false;
                            (m.member_id.clone(), m.assignment.clone())
                        })
                        .collect();
                    for (id, assignment) in waiting {
                        let result = self.sync_ok(assignment);
                        effects.push(Effect::Sync(id, result));
                    }
                }
                Answer::Wait(p.member_id)
            }
        }
    }

    fn sync_ok(&self, assignment: Bytes) -> SyncResult {
        SyncResult {
            error: 0,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment,
        }
    }

    pub fn heartbeat(
        &mut self,
        now: Instant,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        let state = self.state;
        let current = self.generation;
        let Some(m) = self.member_mut(member_id) else {
            return ResponseError::UnknownMemberId.code();
        };
        if instance_id.is_some() && m.instance_id.as_deref() != instance_id {
            return ResponseError::FencedInstanceId.code();
        }
        if generation != current {
            return ResponseError::IllegalGeneration.code();
        }
        m.last_seen = now;
        match state {
            GroupState::Empty => ResponseError::UnknownMemberId.code(),
            GroupState::PreparingRebalance => ResponseError::RebalanceInProgress.code(),
            GroupState::CompletingRebalance | GroupState::Stable => 0,
        }
    }

    /// Removes members that leave; returns an error code per requested member.
    pub fn leave(
        &mut self,
        now: Instant,
        leaving: &[(String, Option<String>)],
        effects: &mut Vec<Effect>,
    ) -> Vec<i16> {
        let mut codes = Vec::with_capacity(leaving.len());
        let mut removed = false;
        for (member_id, instance_id) in leaving {
            // v3+ static members may leave by instance id alone.
            let target = if member_id.is_empty() {
                instance_id
                    .as_deref()
                    .and_then(|i| self.static_member(i))
                    .map(|m| m.member_id.clone())
            } else {
                Some(member_id.clone())
            };
            if self.pending.remove(member_id).is_some() {
                codes.push(0);
                continue;
            }
            let Some(target) = target.filter(|t| self.member(t).is_some()) else {
                codes.push(ResponseError::UnknownMemberId.code());
                continue;
            };
            let m = self.member(&target).expect("filtered above");
            if instance_id.is_some() && m.instance_id != *instance_id {
                codes.push(ResponseError::FencedInstanceId.code());
                continue;
            }
            self.remove_member(&target, effects);
            removed = true;
            codes.push(0);
        }
        if removed {
            self.membership_changed(now, effects);
        }
        codes
    }

    fn remove_member(&mut self, member_id: &str, effects: &mut Vec<Effect>) {
        if let Some(pos) = self.members.iter().position(|m| m.member_id == member_id) {
            let m = self.members.remove(pos);
            if m.awaiting_join {
                effects.push(Effect::Join(
                    m.member_id.clone(),
                    JoinResult::error(ResponseError::UnknownMemberId, &m.member_id),
                ));
            }
            if m.awaiting_sync {
                effects.push(Effect::Sync(
                    m.member_id.clone(),
                    SyncResult::error(ResponseError::UnknownMemberId),
                ));
            }
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
    }

    fn membership_changed(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, effects);
            }
            GroupState::Empty | GroupState::PreparingRebalance => {}
        }
        if self.members.is_empty() && self.state == GroupState::PreparingRebalance {
            // Nobody left to wait for.
            self.rebalance_deadline = Some(now);
            self.initial_delay_until = None;
        }
        self.poll(now, effects);
    }

    /// Expires sessions and pending member ids, and completes a rebalance that is due.
    pub fn poll(&mut self, now: Instant, effects: &mut Vec<Effect>) {
        self.pending.retain(|_, expiry| *expiry > now);
        // Members waiting at the barrier are alive by definition: their request is held.
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|m| {
                !m.awaiting_join && !m.awaiting_sync && now >= m.last_seen + m.session_timeout
            })
            .map(|m| m.member_id.clone())
            .collect();
        if !expired.is_empty() {
            for id in &expired {
                tracing::info!(
                    group = self.id,
                    member = id,
                    "session expired; member removed"
                );
                self.remove_member(id, effects);
            }
            match self.state {
                GroupState::Stable | GroupState::CompletingRebalance => {
                    self.prepare_rebalance(now, effects)
                }
                GroupState::Empty | GroupState::PreparingRebalance => {}
            }
            if self.members.is_empty() && self.state == GroupState::PreparingRebalance {
                self.rebalance_deadline = Some(now);
            }
        }
        self.maybe_complete_join(now, effects);
    }

    /// Whether an offset commit from this member and generation is accepted, as an error
    /// code (0 = accepted). Generation -1 with no member id is a "simple" commit, allowed
    /// only while the group has no members.
    pub fn check_commit(
        &mut self,
        now: Instant,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        if generation < 0 && member_id.is_empty() {
            return if self.state == GroupState::Empty {
                0
            } else {
                ResponseError::UnknownMemberId.code()
            };
        }
        if self.state == GroupState::CompletingRebalance {
            return ResponseError::RebalanceInProgress.code();
        }
        let current = self.generation;
        let Some(m) = self.member_mut(member_id) else {
            return ResponseError::UnknownMemberId.code();
        };
        if instance_id.is_some() && m.instance_id.as_deref() != instance_id {
            return ResponseError::FencedInstanceId.code();
        }
        if generation != current {
            return ResponseError::IllegalGeneration.code();
        }
        m.last_seen = now;
        0
    }

    /// The earliest instant at which `poll` has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let sessions = self
            .members
            .iter()
            .filter(|m| !m.awaiting_join && !m.awaiting_sync)
            .map(|m| m.last_seen + m.session_timeout);
        let pending = self.pending.values().copied();
        let rebalance = [self.rebalance_deadline, self.initial_delay_until]
            .into_iter()
            .flatten();
        sessions.chain(pending).chain(rebalance).min()
    }

    /// Restores a group from its stored form: members get a fresh session from `now`.
    pub fn restore(
        config: GroupConfig,
        stored: super::persist::StoredState,
        now: Instant,
    ) -> Group {
        let mut g = Group::new(&stored.group_id, config);
        g.generation = stored.generation;
        g.protocol_type = stored.protocol_type;
        g.protocol = stored.protocol;
        g.leader = stored.leader;
        g.members = stored
            .members
            .into_iter()
            .map(|m| Member {
                member_id: m.member_id,
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout: m.session_timeout,
                rebalance_timeout: m.rebalance_timeout,
                protocols: m.protocols,
                assignment: m.assignment,
                last_seen: now,
                awaiting_join: false,
                awaiting_sync: false,
            })
            .collect();
        g.state = if g.members.is_empty() {
            GroupState::Empty
        } else {
            // Only Stable groups are stored with members; a rebalance in progress is redone.
            GroupState::Stable
        };
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GroupConfig {
        GroupConfig {
            session_timeout_min: Duration::from_millis(10),
            session_timeout_max: Duration::from_secs(600),
            initial_rebalance_delay: Duration::from_millis(100),
        }
    }

    fn params(member_id: &str, instance: Option<&str>) -> JoinParams {
        JoinParams {
            member_id: member_id.to_string(),
            instance_id: instance.map(str::to_string),
            client_id: "c".to_string(),
            client_host: "/127.0.0.1".to_string(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".to_string(),
            protocols: vec![
                ("range".to_string(), Bytes::from_static(b"r")),
                ("roundrobin".to_string(), Bytes::from_static(b"rr")),
            ],
            require_known_member_id: true,
        }
    }

    /// Joins a new dynamic member through MEMBER_ID_REQUIRED; returns its id.
    fn join_new(g: &mut Group, now: Instant, effects: &mut Vec<Effect>) -> String {
        let Answer::Now(first) = g.join(now, params("", None), effects) else {
            panic!("a new member is asked to rejoin with an id")
        };
        assert_eq!(first.error, ResponseError::MemberIdRequired.code());
        let id = first.member_id;
        assert_eq!(
            g.join(now, params(&id, None), effects),
            Answer::Wait(id.clone())
        );
        id
    }

    fn joins(effects: &[Effect]) -> Vec<(String, JoinResult)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Join(m, r) => Some((m.clone(), r.clone())),
                _ => None,
            })
            .collect()
    }

    fn stable_group_of_two(now: Instant) -> (Group, String, String) {
        let mut g = Group::new("g", config());
        let mut fx = Vec::new();
        let a = join_new(&mut g, now, &mut fx);
        let b = join_new(&mut g, now, &mut fx);
        assert!(
            joins(&fx).is_empty(),
            "the initial delay holds the first rebalance"
        );
        let later = now + Duration::from_millis(100);
        g.poll(later, &mut fx);
        let done = joins(&fx);
        assert_eq!(done.len(), 2);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        assert_eq!(g.generation, 1);
        assert_eq!(g.protocol.as_deref(), Some("range"));
        let leader = done.iter().find(|(m, _)| *m == a).unwrap();
        assert_eq!(leader.1.leader, a);
        assert_eq!(leader.1.members.len(), 2);
        assert!(done
            .iter()
            .find(|(m, _)| *m == b)
            .unwrap()
            .1
            .members
            .is_empty());

        fx.clear();
        let sync = |m: &str, assignments: Vec<(String, Bytes)>| SyncParams {
            member_id: m.to_string(),
            instance_id: None,
            generation: 1,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments,
        };
        assert_eq!(
            g.sync(later, sync(&b, vec![]), &mut fx),
            Answer::Wait(b.clone())
        );
        let assignments = vec![
            (a.clone(), Bytes::from_static(b"A")),
            (b.clone(), Bytes::from_static(b"B")),
        ];
        assert_eq!(
            g.sync(later, sync(&a, assignments), &mut fx),
            Answer::Wait(a.clone())
        );
        assert_eq!(g.state, GroupState::Stable);
        let synced: Vec<_> = fx
            .iter()
            .filter_map(|e| match e {
                Effect::Sync(m, r) => Some((m.clone(), r.assignment.clone())),
                _ => None,
            })
            .collect();
        assert!(synced.contains(&(b.clone(), Bytes::from_static(b"B"))));
        assert!(synced.contains(&(a.clone(), Bytes::from_static(b"A"))));
        assert!(fx.contains(&Effect::Persist));
        (g, a, b)
    }

    #[test]
    fn two_members_rebalance_to_stable() {
        stable_group_of_two(Instant::now());
    }

    #[test]
    fn heartbeat_errors_follow_kafka() {
        let now = Instant::now();
        let (mut g, a, _) = stable_group_of_two(now);
        assert_eq!(g.heartbeat(now, &a, None, 1), 0);
        assert_eq!(
            g.heartbeat(now, &a, None, 0),
            ResponseError::IllegalGeneration.code()
        );
        assert_eq!(
            g.heartbeat(now, "nobody", None, 1),
            ResponseError::UnknownMemberId.code()
        );
        assert_eq!(
            g.heartbeat(now, &a, Some("someone"), 1),
            ResponseError::FencedInstanceId.code()
        );
        // A third member joining starts a rebalance: the others learn it from heartbeats.
        let mut fx = Vec::new();
        join_new(&mut g, now, &mut fx);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(
            g.heartbeat(now, &a, None, 1),
            ResponseError::RebalanceInProgress.code()
        );
        assert_eq!(
            g.check_commit(now, &a, None, 1),
            0,
            "commits stay allowed while preparing"
        );
    }

    #[test]
    fn a_member_that_stops_heartbeating_is_removed() {
        let now = Instant::now();
        let (mut g, a, b) = stable_group_of_two(now);
        let mut fx = Vec::new();
        let later = now + Duration::from_secs(5);
        assert_eq!(g.heartbeat(later, &a, None, 1), 0);
        g.poll(now + Duration::from_secs(11), &mut fx);
        assert!(g.member(&b).is_none(), "b's session expired");
        assert_eq!(g.state, GroupState::PreparingRebalance);
        // a rejoins; with b gone the rebalance completes at once.
        assert_eq!(
            g.join(now + Duration::from_secs(11), params(&a, None), &mut fx),
            Answer::Wait(a.clone())
        );
        assert_eq!(g.state, GroupState::CompletingRebalance);
        assert_eq!(g.generation, 2);
    }

    #[test]
    fn leaving_and_rejoining_members() {
        let now = Instant::now();
        let (mut g, a, b) = stable_group_of_two(now);
        let mut fx = Vec::new();
        assert_eq!(g.leave(now, &[(b.clone(), None)], &mut fx), vec![0]);
        assert_eq!(
            g.leave(now, &[(b.clone(), None)], &mut fx),
            vec![ResponseError::UnknownMemberId.code()]
        );
        assert_eq!(g.state, GroupState::PreparingRebalance);
        assert_eq!(
            g.sync(
                now,
                SyncParams {
                    member_id: a.clone(),
                    instance_id: None,
                    generation: 1,
                    protocol_type: None,
                    protocol_name: None,
                    assignments: vec![],
                },
                &mut fx
            ),
            Answer::Now(SyncResult::error(ResponseError::RebalanceInProgress))
        );
        assert_eq!(g.leave(now, &[(a.clone(), None)], &mut fx), vec![0]);
        assert_eq!(g.state, GroupState::Empty);
        assert_eq!(
            g.check_commit(now, "", None, -1),
            0,
            "simple commits once empty"
        );
    }

    #[test]
    fn a_restarted_static_member_keeps_its_assignment_without_a_rebalance() {
        let now = Instant::now();
        let mut g = Group::new("g", config());
        let mut fx = Vec::new();
        assert!(matches!(
            g.join(now, params("", Some("i1")), &mut fx),
            Answer::Wait(_)
        ));
        g.poll(now + Duration::from_millis(100), &mut fx);
        let (old, result) = joins(&fx).pop().unwrap();
        assert_eq!(result.leader, old);
        fx.clear();
        g.sync(
            now,
            SyncParams {
                member_id: old.clone(),
                instance_id: Some("i1".into()),
                generation: 1,
                protocol_type: None,
                protocol_name: None,
                assignments: vec![(old.clone(), Bytes::from_static(b"X"))],
            },
            &mut fx,
        );
        assert_eq!(g.state, GroupState::Stable);
        // The same instance comes back with a fresh process: new member id, same generation.
        let Answer::Now(r) = g.join(now, params("", Some("i1")), &mut fx) else {
            panic!("no rebalance expected")
        };
        assert_eq!(r.error, 0);
        assert_eq!(r.generation, 1);
        assert_ne!(r.member_id, old);
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(
            g.heartbeat(now, &old, Some("i1"), 1),
            ResponseError::UnknownMemberId.code()
        );
        assert_eq!(g.heartbeat(now, &r.member_id, Some("i1"), 1), 0);
        assert_eq!(g.members[0].assignment, Bytes::from_static(b"X"));
    }

    #[test]
    fn protocols_must_match() {
        let now = Instant::now();
        let (mut g, _, _) = stable_group_of_two(now);
        let mut other = params("", None);
        other.protocols = vec![("sticky".into(), Bytes::new())];
        let mut fx = Vec::new();
        assert_eq!(
            g.join(now, other, &mut fx),
            Answer::Now(JoinResult::error(
                ResponseError::InconsistentGroupProtocol,
                ""
            ))
        );
        let mut bad_session = params("", None);
        bad_session.session_timeout = Duration::from_millis(1);
        assert!(matches!(
            g.join(now, bad_session, &mut fx),
            Answer::Now(JoinResult { error, .. }) if error == ResponseError::InvalidSessionTimeout.code()
        ));
    }
}
