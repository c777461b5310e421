'use strict';
// rpm2d's code layout: the functions the daemon and the CLI run are linked together at the start of
// its code (crates/rpm2d/hot.ld, written by scripts/hot-order.js), which is most of what keeps the
// daemon's RSS low (the kernel maps code 64 kB around each page it touches). The list names the
// build's functions, and a dependency, feature or compiler change renames them: then this fails and
// says what to run.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');

const ROOT = path.join(__dirname, '..');

/** The ELF64 section headers of `file`: [{name, size}]. */
function sections(file) {
  const b = fs.readFileSync(file);
  assert.equal(b.toString('latin1', 1, 4), 'ELF', `${file} is not an ELF executable`);
  const shoff = Number(b.readBigUInt64LE(0x28));
  const shentsize = b.readUInt16LE(0x3a);
  const shnum = b.readUInt16LE(0x3c);
  const shstrndx = b.readUInt16LE(0x3e);
  const header = (i) => {
    const o = shoff + i * shentsize;
    return { nameAt: b.readUInt32LE(o), offset: Number(b.readBigUInt64LE(o + 0x18)), size: Number(b.readBigUInt64LE(o + 0x20)) };
  };
  const strtab = header(shstrndx);
  return Array.from({ length: shnum }, (_, i) => {
    const h = header(i);
    const start = strtab.offset + h.nameAt;
    return { name: b.toString('latin1', start, b.indexOf(0, start)), size: h.size };
  });
}

test('rpm2d links the functions it runs together (crates/rpm2d/hot.ld still names this build\'s functions)',
  { skip: process.platform !== 'linux' || process.arch !== 'x64' ? 'the layout list is made for linux-x64' : false }, () => {
    const exe = path.join(ROOT, 'rpm2d');
    const all = sections(exe);
    const text = all.find((s) => s.name === '.text');
    assert.ok(text && text.size > 1 << 20, `no .text in ${exe}`);
    const hot = all.find((s) => s.name === '.text.rpm2');
    assert.ok(hot, `${exe} has no .text.rpm2 section: crates/rpm2d/build.rs did not pass crates/rpm2d/hot.ld to the linker`);
    // About 1.8 MB when the list matches; the standard library's names alone (all that still match
    // once the crate names change) are about 120 kB.
    assert.ok(hot.size > 1 << 20, `.text.rpm2 in ${exe} is ${Math.round(hot.size / 1024)} kB: crates/rpm2d/hot.ld no longer names this build's functions (a dependency, feature or compiler change renamed them); run \`node scripts/hot-order.js\` and commit crates/rpm2d/hot.ld`);
  });
