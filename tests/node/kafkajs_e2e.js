// kafkajs (a pure JavaScript client) against a running agent: admin, produce, offsets.
// Usage: node kafkajs_e2e.js HOST:PORT
'use strict';
const { Kafka, logLevel } = require('kafkajs');

const bootstrap = process.argv[2];
if (!bootstrap) {
  console.error('usage: node kafkajs_e2e.js HOST:PORT');
  process.exit(2);
}

function check(cond, msg) {
  if (!cond) throw new Error(`check failed: ${msg}`);
}

async function main() {
  const kafka = new Kafka({ clientId: 'kafkajs-e2e', brokers: [bootstrap], logLevel: logLevel.WARN });
  const admin = kafka.admin();
  await admin.connect();
  const topic = 'kafkajs-topic';
  const created = await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
  check(created === true, 'topic created');
  const again = await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] });
  check(again === false, 'second creation reports the topic exists');
  const topics = await admin.listTopics();
  check(topics.includes(topic), `listTopics has ${topic}: ${topics}`);

  const producer = kafka.producer();
  await producer.connect();
  const perPartition = [0, 0, 0];
  for (let round = 0; round < 10; round++) {
    const messages = [];
    for (let i = 0; i < 30; i++) {
      const partition = i % 3;
      perPartition[partition]++;
      messages.push({ partition, key: `k${round}-${i}`, value: `v${round}-${i}`, headers: { h: 'x' } });
    }
    const meta = await producer.send({ topic, acks: -1, messages });
    for (const m of meta) check(m.errorCode === 0, `produce error ${JSON.stringify(m)}`);
  }
  for (const compression of [1 /* gzip */]) {
    await producer.send({ topic, acks: -1, compression, messages: [{ partition: 0, value: 'gz' }] });
    perPartition[0]++;
  }
  await producer.disconnect();

  const offsets = await admin.fetchTopicOffsets(topic);
  offsets.sort((a, b) => a.partition - b.partition);
  for (const o of offsets) {
    check(Number(o.high) === perPartition[o.partition], `partition ${o.partition} high ${o.high} != ${perPartition[o.partition]}`);
    check(Number(o.low) === 0, `partition ${o.partition} low ${o.low}`);
  }
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  check(meta.topics[0].partitions.length === 3, 'three partitions');

  // A consumer group reads every record once and commits its offsets.
  const total = perPartition.reduce((a, b) => a + b);
  const consumer = kafka.consumer({ groupId: 'kafkajs-group', sessionTimeout: 10000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen = new Set();
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`group read ${seen.size} of ${total}`)), 60000);
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        const id = `${partition}/${message.offset}`;
        if (seen.has(id)) reject(new Error(`read ${id} twice`));
        seen.add(id);
        if (seen.size === total) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.stop();
  await consumer.disconnect();
  const committed = await admin.fetchOffsets({ groupId: 'kafkajs-group', topics: [topic] });
  for (const p of committed[0].partitions) {
    check(Number(p.offset) === perPartition[p.partition], `committed ${JSON.stringify(p)}`);
  }
  const groups = await admin.listGroups();
  check(groups.groups.some((g) => g.groupId === 'kafkajs-group'), 'listGroups has the group');

  await admin.deleteTopics({ topics: [topic] });
  const after = await admin.listTopics();
  check(!after.includes(topic), 'topic deleted');
  await admin.disconnect();
  console.log(`kafkajs ok: ${perPartition.reduce((a, b) => a + b)} records, offsets ${JSON.stringify(offsets)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
