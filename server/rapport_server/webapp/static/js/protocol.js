// The Rapport protocol in the browser: the same signing rules as rapport_protocol.
//
// Signing input = RFC 8785 (JCS) bytes of the object without id, proof and payload;
// id = lowercase hex SHA-256 of those bytes; proof = {type: "ed25519-jcs", kid, sig}.
// Connection objects carry cid and a per-sender chain (seq from 1, prev = previous id).
import * as ed from "../vendor/noble-ed25519.js";
import { base58, base64urlnopad } from "../vendor/scure-base.js";
import canonicalize from "../vendor/canonicalize.js";

export const TYPE_PREFIX = "https://rapport.dev/protocol/1.0/";
export const PROOF_TYPE = "ed25519-jcs";
const ED25519_MULTICODEC = [0xed, 0x01];
const UNSIGNED = new Set(["id", "proof", "payload"]);
const UNCHAINED = new Set(["invitation", "key-rotation"]);
const encoder = new TextEncoder();

export const b64url = (bytes) => base64urlnopad.encode(bytes);
export const b64urlDecode = (text) => base64urlnopad.decode(text);

export function shortType(uri) {
  return uri.startsWith(TYPE_PREFIX) ? uri.slice(TYPE_PREFIX.length) : uri;
}

export async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function jcs(value) {
  return encoder.encode(canonicalize(value));
}

export function didOfPublicKey(publicKey) {
  const bytes = new Uint8Array(2 + publicKey.length);
  bytes.set(ED25519_MULTICODEC, 0);
  bytes.set(publicKey, 2);
  return "did:key:z" + base58.encode(bytes);
}

export function kidOfDid(did) {
  return `${did}#${did.slice("did:key:".length)}`;
}

/** The 32-byte public key inside an Ed25519 did:key; throws for anything else. */
export function publicKeyOfDid(did) {
  if (typeof did !== "string" || !did.startsWith("did:key:z")) throw new Error("not a did:key");
  const raw = base58.decode(did.slice("did:key:z".length));
  if (raw.length !== 34 || raw[0] !== 0xed || raw[1] !== 0x01) {
    throw new Error("not an Ed25519 did:key");
  }
  const publicKey = raw.slice(2);
  if (didOfPublicKey(publicKey) !== did) throw new Error("did:key is not canonically encoded");
  return publicKey;
}

/** An identity from a 32-byte seed: {seed, publicKey, did, kid, sign(bytes)}. */
export async function identityFromSeed(seed) {
  const publicKey = await ed.getPublicKeyAsync(seed);
  const did = didOfPublicKey(publicKey);
  return {
    seed,
    publicKey,
    did,
    kid: kidOfDid(did),
    sign: (bytes) => ed.signAsync(bytes, seed),
  };
}

export function newSeed() {
  return crypto.getRandomValues(new Uint8Array(32));
}

export function nowSeconds() {
  return Math.floor(Date.now() / 1000);
}

export async function payloadDigest(payload) {
  const bytes = encoder.encode(payload);
  return { content_digest: await sha256Hex(bytes), content_length: bytes.length };
}

/**
 * Sign a protocol object. `type` is the short name ("mute"); optional headers left
 * undefined are omitted, never null. For a message, pass `payload`: the digest is added.
 */
export async function sign(identity, type, body, headers = {}) {
  let signedBody = body;
  if (headers.payload !== undefined) {
    signedBody = { ...body, ...(await payloadDigest(headers.payload)) };
  }
  const unsigned = {
    type: TYPE_PREFIX + type,
    from: identity.did,
    created_time: headers.created_time ?? nowSeconds(),
    seq: headers.seq ?? 0,
    body: signedBody,
  };
  for (const name of ["cid", "prev", "thid", "expires_time", "to"]) {
    if (headers[name] !== undefined && headers[name] !== null) unsigned[name] = headers[name];
  }
  const input = jcs(unsigned);
  const signature = await identity.sign(input);
  const obj = {
    id: await sha256Hex(input),
    ...unsigned,
    proof: { type: PROOF_TYPE, kid: identity.kid, sig: b64url(signature) },
  };
  if (headers.payload !== undefined) obj.payload = headers.payload;
  return obj;
}

/** Check one object's id, kid, signature and payload. Returns null when good, else why. */
export async function checkObject(obj) {
  if (!obj || typeof obj !== "object" || !obj.proof) return "not a signed object";
  if (obj.proof.type !== PROOF_TYPE) return "unknown proof type";
  let publicKey;
  try {
    publicKey = publicKeyOfDid(obj.from);
  } catch (err) {
    return `bad sender: ${err.message}`;
  }
  if (obj.proof.kid !== kidOfDid(obj.from)) return "proof.kid does not belong to the sender";
  const unsigned = {};
  for (const [name, value] of Object.entries(obj)) {
    if (!UNSIGNED.has(name)) unsigned[name] = value;
  }
  const input = jcs(unsigned);
  if ((await sha256Hex(input)) !== obj.id) return "id is not the hash of the content";
  let good = false;
  try {
    // Strict RFC 8032 like libsodium: canonical encodings, S < L, no small-order A or R.
    if (ed.Point.fromHex(publicKey, false).isSmallOrder()) return "weak public key";
    const signature = b64urlDecode(obj.proof.sig);
    if (signature.length !== 64 || ed.Point.fromHex(signature.slice(0, 32), false).isSmallOrder()) {
      return "signature does not verify";
    }
    good = await ed.verifyAsync(signature, input, publicKey, { zip215: false });
  } catch {
    good = false;
  }
  if (!good) return "signature does not verify";
  if (typeof obj.payload === "string") {
    const digest = await payloadDigest(obj.payload);
    if (digest.content_digest !== obj.body.content_digest) return "content does not match digest";
  }
  return null;
}

/**
 * Re-verify a connection log in the browser: every signature and id, and each party's
 * hash chain (seq 1, 2, … with prev = the id before). Key rotations hand a role's chain to
 * the new key. Returns {ok, count, problems: [{index, id, reason}]}.
 */
export async function verifyLog(objects) {
  const problems = [];
  const roleOf = new Map();
  const heads = [{ seq: 0, last: null }, { seq: 0, last: null }];
  let cid = null; // derived from the invitation and the acceptor, like derive_cid
  for (const [index, obj] of objects.entries()) {
    const reason = await checkObject(obj);
    if (reason) problems.push({ index, id: obj?.id, reason });
    // A bad object still takes its claimed place in its chain, so one forgery is reported
    // once rather than as a broken chain for everything after it.
    if (!obj || typeof obj.type !== "string") continue;
    const type = shortType(obj.type);
    if (index === 0) {
      if (type !== "invitation") problems.push({ index, id: obj.id, reason: "log must start with the invitation" });
      roleOf.set(obj.from, 0);
      continue;
    }
    if (type === "key-rotation") {
      const role = roleOf.get(obj.from);
      if (role === undefined) problems.push({ index, id: obj.id, reason: "rotation by a stranger" });
      else {
        roleOf.delete(obj.from); // the old key speaks for nobody any more
        roleOf.set(obj.body.new_key, role);
      }
      continue;
    }
    if (UNCHAINED.has(type) || (type === "message" && obj.cid === undefined)) continue;
    if ((type === "accept" || type === "decline") && heads[1].seq === 0 && !roleOf.has(obj.from)) {
      roleOf.set(obj.from, 1);
      cid = await deriveCid(objects[0].id, obj.from);
    }
    if (obj.cid !== cid) {
      if (!reason) problems.push({ index, id: obj.id, reason: "not this connection" });
      continue;
    }
    const role = roleOf.get(obj.from);
    if (role === undefined) {
      if (!reason) problems.push({ index, id: obj.id, reason: "sender is not a party" });
      continue;
    }
    const head = heads[role];
    const expectedPrev = head.seq === 0 ? undefined : head.last;
    if (!reason && (obj.seq !== head.seq + 1 || obj.prev !== expectedPrev)) {
      problems.push({ index, id: obj.id, reason: `chain broken: expected seq ${head.seq + 1}` });
    }
    heads[role] = { seq: obj.seq, last: obj.id };
  }
  return { ok: problems.length === 0 && objects.length > 0, count: objects.length, problems };
}

/** My chain head in a connection, recovered from its log: {seq, prev}. */
export function chainHead(objects, did) {
  let seq = 0;
  let prev;
  for (const obj of objects) {
    if (obj.from === did && obj.cid !== undefined && obj.seq > seq) {
      seq = obj.seq;
      prev = obj.id;
    }
  }
  return { seq, prev };
}

/** The cid of the connection that accepting `invitationId` as `did` opens. */
export async function deriveCid(invitationId, did) {
  return (await sha256Hex(encoder.encode(`${invitationId}|${did}`))).slice(0, 32);
}

/** An RFC 7523 client assertion (compact JWS, EdDSA) for `audience`. */
export async function assertion(identity, audience) {
  const now = nowSeconds();
  const header = { alg: "EdDSA", kid: identity.kid, typ: "JWT" };
  const jti = b64url(crypto.getRandomValues(new Uint8Array(16)));
  const claims = { iss: identity.did, sub: identity.did, aud: audience, iat: now, exp: now + 120, jti };
  const part = (value) => b64url(encoder.encode(JSON.stringify(value)));
  const input = `${part(header)}.${part(claims)}`;
  const signature = await identity.sign(encoder.encode(input));
  return `${input}.${b64url(signature)}`;
}
