// The highest GLIBC_x.y symbol version an ELF file needs, read from its version-needs section
// (.gnu.version_r), as `objdump -T file | grep GLIBC_` would show it, without binutils.
'use strict';
const fs = require('fs');

const SHT_GNU_VERNEED = 0x6ffffffe;

function cstr(buf, off) {
  let end = off;
  while (end < buf.length && buf[end] !== 0) end++;
  return buf.toString('latin1', off, end);
}

/** Every version name (GLIBC_2.17, GCC_3.0, ...) the 64-bit little-endian ELF `file` needs. */
function neededVersions(file) {
  const b = fs.readFileSync(file);
  if (b.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file} is not an ELF file`);
  if (b[4] !== 2 || b[5] !== 1) throw new Error(`${file} is not a 64-bit little-endian ELF file`);
  const shoff = Number(b.readBigUInt64LE(0x28));
  const shentsize = b.readUInt16LE(0x3a);
  const shnum = b.readUInt16LE(0x3c);
  const sec = (i) => {
    const o = shoff + i * shentsize;
    return { type: b.readUInt32LE(o + 4), offset: Number(b.readBigUInt64LE(o + 0x18)), link: b.readUInt32LE(o + 0x28) };
  };
  const names = [];
  for (let i = 0; i < shnum; i++) {
    const s = sec(i);
    if (s.type !== SHT_GNU_VERNEED) continue;
    const strtab = sec(s.link).offset;
    let vn = s.offset;
    for (;;) {
      const cnt = b.readUInt16LE(vn + 2);
      let aux = vn + b.readUInt32LE(vn + 8);
      for (let j = 0; j < cnt; j++) {
        names.push(cstr(b, strtab + b.readUInt32LE(aux + 8)));
        const next = b.readUInt32LE(aux + 12);
        if (!next) break;
        aux += next;
      }
      const next = b.readUInt32LE(vn + 12);
      if (!next) break;
      vn += next;
    }
  }
  return names;
}

function cmp(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if ((x[i] || 0) !== (y[i] || 0)) return (x[i] || 0) - (y[i] || 0);
  }
  return 0;
}

/** The highest glibc version (e.g. "2.17") that `file` needs, or null when it needs none. */
function maxGlibc(file) {
  const v = neededVersions(file)
    .map((n) => /^GLIBC_(\d+(\.\d+)*)$/.exec(n))
    .filter(Boolean)
    .map((m) => m[1]);
  return v.length ? v.sort(cmp)[v.length - 1] : null;
}

/** Throws (one line, naming the file) when `file` needs a glibc newer than `limit`. */
function checkGlibc(file, limit) {
  const got = maxGlibc(file);
  if (got && cmp(got, limit) > 0) {
    throw new Error(`${file} needs GLIBC_${got}, newer than the supported ${limit}: build it with \`npm run package\` (cargo-zigbuild, target .${limit})`);
  }
  return got;
}

module.exports = { neededVersions, maxGlibc, checkGlibc, cmp };

if (require.main === module) {
  for (const f of process.argv.slice(2)) console.log(`${f}: GLIBC_${maxGlibc(f)}`);
}
