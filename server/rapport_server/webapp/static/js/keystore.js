// The person's private key lives only in this browser (localStorage of this origin) and in
// backup files encrypted with a passphrase (PBKDF2-SHA-256 → AES-256-GCM, via WebCrypto).
import { b64url, b64urlDecode, identityFromSeed, newSeed } from "./protocol.js";

const STORAGE_KEY = "rapport.key.v1";
const BACKUP_FORMAT = "rapport-key-backup";
const PBKDF2_ITERATIONS = 600000; // OWASP 2023 guidance for PBKDF2-HMAC-SHA256
const encoder = new TextEncoder();

export async function loadIdentity() {
  const stored = localStorage.getItem(STORAGE_KEY);
  if (!stored) return null;
  const record = JSON.parse(stored);
  const identity = await identityFromSeed(b64urlDecode(record.seed));
  identity.partyId = record.party_id ?? null;
  identity.displayName = record.display_name ?? "";
  return identity;
}

export function saveIdentity(identity) {
  localStorage.setItem(
    STORAGE_KEY,
    JSON.stringify({
      seed: b64url(identity.seed),
      did: identity.did,
      party_id: identity.partyId ?? null,
      display_name: identity.displayName ?? "",
    }),
  );
}

export function forgetIdentity() {
  localStorage.removeItem(STORAGE_KEY);
  for (const name of Object.keys(localStorage)) {
    if (name.startsWith("rapport.")) localStorage.removeItem(name);
  }
}

export async function createIdentity() {
  return identityFromSeed(newSeed());
}

async function wrappingKey(passphrase, salt, iterations) {
  const material = await crypto.subtle.importKey("raw", encoder.encode(passphrase), "PBKDF2", false, [
    "deriveKey",
  ]);
  return crypto.subtle.deriveKey(
    { name: "PBKDF2", hash: "SHA-256", salt, iterations },
    material,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

/** An encrypted backup of `identity` as a JSON string (the DID is bound as AES-GCM AAD). */
export async function exportBackup(identity, passphrase) {
  if (!passphrase || passphrase.length < 8) throw new Error("Use a passphrase of at least 8 characters.");
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const key = await wrappingKey(passphrase, salt, PBKDF2_ITERATIONS);
  const plaintext = encoder.encode(
    JSON.stringify({ seed: b64url(identity.seed), party_id: identity.partyId, display_name: identity.displayName }),
  );
  const ciphertext = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: encoder.encode(identity.did) },
    key,
    plaintext,
  );
  return JSON.stringify(
    {
      format: BACKUP_FORMAT,
      version: 1,
      did: identity.did,
      kdf: { name: "PBKDF2", hash: "SHA-256", iterations: PBKDF2_ITERATIONS, salt: b64url(salt) },
      cipher: { name: "AES-GCM", iv: b64url(iv) },
      ciphertext: b64url(new Uint8Array(ciphertext)),
    },
    null,
    2,
  );
}

/** Decrypt a backup file's text; throws a readable Error on a wrong passphrase or file. */
export async function importBackup(text, passphrase) {
  let doc;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error("This is not a Rapport key backup file.");
  }
  if (doc.format !== BACKUP_FORMAT || doc.version !== 1 || doc.kdf?.name !== "PBKDF2") {
    throw new Error("This is not a Rapport key backup file.");
  }
  const key = await wrappingKey(passphrase, b64urlDecode(doc.kdf.salt), doc.kdf.iterations);
  let plaintext;
  try {
    plaintext = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: b64urlDecode(doc.cipher.iv), additionalData: encoder.encode(doc.did) },
      key,
      b64urlDecode(doc.ciphertext),
    );
  } catch {
    throw new Error("Wrong passphrase, or the file was changed.");
  }
  const inner = JSON.parse(new TextDecoder().decode(plaintext));
  const identity = await identityFromSeed(b64urlDecode(inner.seed));
  if (identity.did !== doc.did) throw new Error("The backup file is inconsistent.");
  identity.partyId = inner.party_id ?? null;
  identity.displayName = inner.display_name ?? "";
  return identity;
}
