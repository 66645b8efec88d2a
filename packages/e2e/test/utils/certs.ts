/**
 * Test PKI made with the real `openssl` binary: certificate authorities, a server certificate
 * for 127.0.0.1/localhost, client certificates whose CN is an agent's name. EC P-256 keys keep
 * generation fast. Also Ed25519 key pairs in barto's config format (base64 seed / public key).
 */
import { execFileSync } from "node:child_process"
import { generateKeyPairSync } from "node:crypto"
import { writeFileSync } from "node:fs"
import { join } from "node:path"

const openssl = (args: ReadonlyArray<string>, cwd: string) =>
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "pipe", "pipe"] })

const newKey = (dir: string, name: string) => {
  const key = join(dir, `${name}.key`)
  openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key], dir)
  return key
}

export interface Ca {
  readonly cert: string
  readonly key: string
  readonly dir: string
  readonly name: string
}

export interface KeyPair {
  readonly cert: string
  readonly key: string
}

/** A self-signed CA (`<name>.crt`, `<name>.key` in `dir`). */
export const makeCa = (dir: string, name: string): Ca => {
  const key = newKey(dir, name)
  const cert = join(dir, `${name}.crt`)
  openssl(
    [
      "req",
      "-x509",
      "-new",
      "-key",
      key,
      "-sha256",
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
      "-out",
      cert
    ],
    dir
  )
  return { cert, key, dir, name }
}

/** A leaf certificate signed by `ca`: `cn` as subject CN (and `ou` as OU), `sans` as subjectAltName (if any). */
export const issue = (
  ca: Ca,
  fileName: string,
  options: { cn: string; ou?: string; sans?: ReadonlyArray<string>; usage: "server" | "client" }
): KeyPair => {
  const key = newKey(ca.dir, fileName)
  const csr = join(ca.dir, `${fileName}.csr`)
  const cert = join(ca.dir, `${fileName}.crt`)
  const ext = join(ca.dir, `${fileName}.ext`)
  const subject = `/CN=${options.cn}${options.ou === undefined ? "" : `/OU=${options.ou}`}`
  openssl(["req", "-new", "-key", key, "-subj", subject, "-out", csr], ca.dir)
  writeFileSync(
    ext,
    [
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      `extendedKeyUsage=${options.usage === "server" ? "serverAuth" : "clientAuth"}`,
      ...(options.sans && options.sans.length > 0 ? [`subjectAltName=${options.sans.join(",")}`] : [])
    ].join("\n") + "\n"
  )
  openssl(
    [
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      ca.cert,
      "-CAkey",
      ca.key,
      "-CAcreateserial",
      "-days",
      "2",
      "-sha256",
      "-extfile",
      ext,
      "-out",
      cert
    ],
    ca.dir
  )
  return { cert, key }
}

/** The server certificate every TLS test uses: valid for 127.0.0.1 and localhost. */
export const serverCert = (ca: Ca): KeyPair =>
  issue(ca, "server", { cn: "localhost", sans: ["IP:127.0.0.1", "DNS:localhost"], usage: "server" })

/** A client certificate for the agent called `cn`. */
export const clientCert = (ca: Ca, cn: string, fileName = `client-${cn}`): KeyPair =>
  issue(ca, fileName, { cn, usage: "client" })

/** A client certificate for barto-cli under mTLS: the role is the OU `barto-cli` (SECURITY.md). */
export const cliCert = (ca: Ca, cn: string, fileName = `cli-${cn}`): KeyPair =>
  issue(ca, fileName, { cn, ou: "barto-cli", usage: "client" })

/** An Ed25519 pair as barto's config wants it: `signing_key` (base64 seed) and `server_public_key`. */
export const ed25519 = (): { signingKey: string; publicKey: string } => {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519")
  const d = privateKey.export({ format: "jwk" }).d!
  const x = publicKey.export({ format: "jwk" }).x!
  return {
    signingKey: Buffer.from(d, "base64url").toString("base64"),
    publicKey: Buffer.from(x, "base64url").toString("base64")
  }
}
