// oidc-provider storage adapter over Redis (ioredis), written for bench/compare after the
// Adapter interface oidc-provider documents: one instance per model name, with upsert, find,
// findByUid, findByUserCode, consume, destroy and revokeByGrantId. A shared store is what
// lets the cluster's workers see each other's codes, interactions, sessions and grants.
//
// Each record is a Redis hash: `payload` (JSON) and, once used, `consumed` (epoch seconds),
// so consuming a code is one atomic HSET rather than a read-modify-write.
import Redis from 'ioredis';

let client;

/** Connects once per process; `path` is the Redis server's Unix socket. */
export function connect(path) {
  client = new Redis({ path, enableAutoPipelining: true, lazyConnect: false });
  return client;
}

// Models that belong to a grant: revoking the grant (code replay, logout) deletes them all.
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

const grantKey = (id) => `grant:${id}`;
const uidKey = (uid) => `uid:${uid}`;
const userCodeKey = (code) => `userCode:${code}`;

export class RedisAdapter {
  constructor(name) {
    this.name = name;
  }

  key(id) {
    return `${this.name}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const multi = client.multi();
    multi.del(key);
    multi.hset(key, 'payload', JSON.stringify(payload));
    if (expiresIn) multi.expire(key, expiresIn);
    if (GRANTABLE.has(this.name) && payload.grantId) {
      multi.rpush(grantKey(payload.grantId), key);
      // The index lives as long as its longest member.
      if (expiresIn) {
        multi.expire(grantKey(payload.grantId), expiresIn, 'NX');
        multi.expire(grantKey(payload.grantId), expiresIn, 'GT');
      }
    }
    if (payload.userCode) {
      multi.set(userCodeKey(payload.userCode), id, ...(expiresIn ? ['EX', expiresIn] : []));
    }
    if (payload.uid) {
      multi.set(uidKey(payload.uid), id, ...(expiresIn ? ['EX', expiresIn] : []));
    }
    await multi.exec();
  }

  async find(id) {
    const record = await client.hgetall(this.key(id));
    if (!record || !record.payload) return undefined;
    const payload = JSON.parse(record.payload);
    if (record.consumed) payload.consumed = Number(record.consumed);
    return payload;
  }

  async findByUid(uid) {
    const id = await client.get(uidKey(uid));
    return id ? this.find(id) : undefined;
  }

  async findByUserCode(userCode) {
    const id = await client.get(userCodeKey(userCode));
    return id ? this.find(id) : undefined;
  }

  async consume(id) {
    await client.hset(this.key(id), 'consumed', Math.floor(Date.now() / 1000));
  }

  async destroy(id) {
    await client.del(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const keys = await client.lrange(grantKey(grantId), 0, -1);
    const multi = client.multi();
    for (const key of keys) multi.del(key);
    multi.del(grantKey(grantId));
    await multi.exec();
  }
}
