// npm dukpt@3.0.0: the constructor derives IPEK, current key and data key (OWF); then
// TDES-CBC decrypt. A new object per operation = fresh derivation. Prints ops/s.
const Dukpt = require('dukpt');
const secs = parseFloat(process.argv[2] || '3');
const ct = process.argv[3];
const bdk = '0123456789ABCDEFFEDCBA9876543210';
const ksn = 'FFFF9876543210E0AAAA';
const opts = { outputEncoding: 'hex', decryptionMode: '3DES', trimOutput: false };
let sink = 0;
const op = () => { sink += new Dukpt(bdk, ksn).dukptDecrypt(ct, opts).length; };
for (let i = 0; i < 200; i++) op();
// Rate per second of CPU time (user + system), like `cardlane bench`: the machine is shared.
const start = process.hrtime.bigint();
const cpu0 = process.cpuUsage();
const limit = BigInt(Math.round(secs * 1e9));
let n = 0;
for (;;) {
  for (let i = 0; i < 64; i++) op();
  n += 64;
  const el = process.hrtime.bigint() - start;
  if (el >= limit) {
    const c = process.cpuUsage(cpu0);
    console.log((n / ((c.user + c.system) / 1e6)).toFixed(0));
    break;
  }
}
if (sink < 0) console.error(sink);
