// Runs Stripe's official Node library (the `stripe` package pinned in package.json) for
// tests/tests/stripe_signature.rs, so our webhook verifier is checked against headers Stripe
// itself would produce, and our `sign` (used by the fake Stripe) against Stripe's verifier.
//
// Input on stdin, one JSON object:
//   {"sign":   [{"payload": "...", "secret": "whsec_...", "timestamp": 1700000000}, ...],
//    "verify": [{"payload": "...", "header": "t=...,v1=...", "secret": "whsec_...",
//                "tolerance": 300, "received_at": 1700000000}, ...]}
// Output on stdout, one JSON object:
//   {"version": "<stripe package version>",
//    "headers": ["t=...,v1=...", ...],                  (one per "sign" entry)
//    "verified": [{"ok": true} | {"ok": false, "error": "..."}, ...]}  (one per "verify")
'use strict';

const Stripe = require('stripe');
const path = require('path');
const fs = require('fs');
// `stripe/package.json` is not in the package's exports map: read it from disk.
const stripeVersion = JSON.parse(
  fs.readFileSync(path.join(__dirname, 'node_modules', 'stripe', 'package.json'), 'utf8'),
).version;

// The key is never used: webhooks helpers make no API call.
const stripe = Stripe('sk_test_unused');

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => (input += chunk));
process.stdin.on('end', () => {
  const req = JSON.parse(input);
  const headers = (req.sign || []).map((s) =>
    stripe.webhooks.generateTestHeaderString({
      payload: s.payload,
      secret: s.secret,
      timestamp: s.timestamp,
    }),
  );
  const verified = (req.verify || []).map((v) => {
    try {
      // constructEvent's receivedAt is in milliseconds.
      stripe.webhooks.signature.verifyHeader(
        Buffer.from(v.payload, 'utf8'),
        v.header,
        v.secret,
        v.tolerance,
        undefined,
        v.received_at === undefined ? undefined : v.received_at * 1000,
      );
      return { ok: true };
    } catch (e) {
      return { ok: false, error: String(e.message || e) };
    }
  });
  process.stdout.write(JSON.stringify({ version: stripeVersion, headers, verified }));
});
