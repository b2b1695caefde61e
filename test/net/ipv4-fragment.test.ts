/**
 * IPv4 fragmentation (RFC 791 §3.2): exact fragments of a 1500-byte datagram, options
 * copied or not, fragments of fragments, every refusal, and properties over random
 * datagrams checked with the independent checksum and reassembler of packet-fixtures.ts.
 *
 * The fragment headers for 1280, 576 and 68 bytes were cross-checked with scapy 2.5.0
 * (Debian's python3-scapy): `fragment(IP(big), fragsize=(mtu - 20) // 8 * 8)` gives the
 * same 20 bytes per fragment, checksums included.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { toHex } from "../../src/crypto/index.ts";
import { internetChecksum, onesComplementSum } from "../../src/net/checksum.ts";
import { fragmentIpv4, readIpv4Header } from "../../src/net/ipv4-fragment.ts";
import {
  assertSameBytes,
  buildIpv4,
  copiedOptionsOf,
  hex,
  type Ipv4Fields,
  ipv4FieldsArbitrary,
  ipv4HeaderChecksumOk,
  payloadArbitrary,
  reassembleIpv4,
  referenceChecksum,
} from "./packet-fixtures.ts";

/** A 1500-byte UDP datagram without DF: 10.40.0.2:40002 to 10.40.0.3:9000, id 0x4d2e. */
function bigUdp(): Uint8Array {
  const data = Uint8Array.from({ length: 1472 }, (_, i) => (i * 7) & 0xff);
  const udp = new Uint8Array(8 + data.length);
  udp.set([0x9c, 0x42, 0x23, 0x28, udp.length >> 8, udp.length & 0xff]);
  udp.set(data, 8);
  const pseudo = hex("0a280002 0a280003 0011 05c8");
  const checksum = referenceChecksum(pseudo, udp);
  udp[6] = checksum >> 8;
  udp[7] = checksum & 0xff;
  return buildIpv4({ ...BIG_FIELDS, payload: udp });
}

const BIG_FIELDS: Ipv4Fields = {
  typeOfService: 0,
  identification: 0x4d2e,
  reservedFlag: false,
  dontFragment: false,
  moreFragments: false,
  fragmentOffsetUnits: 0,
  timeToLive: 64,
  protocol: 17,
  source: hex("0a280002"),
  destination: hex("0a280003"),
  options: new Uint8Array(0),
  payload: new Uint8Array(0),
};

interface Summary {
  totalLength: number;
  headerLength: number;
  moreFragments: boolean;
  offsetUnits: number;
}

function summarize(fragment: Uint8Array): Summary {
  const flags = (fragment[6]! << 8) | fragment[7]!;
  return {
    totalLength: (fragment[2]! << 8) | fragment[3]!,
    headerLength: (fragment[0]! & 15) * 4,
    moreFragments: (flags & 0x2000) !== 0,
    offsetUnits: flags & 0x1fff,
  };
}

function fragmentsOf(packet: Uint8Array, mtu: number): Uint8Array[] {
  const result = fragmentIpv4(packet, mtu);
  assert.ok(result.ok, `expected fragments, got ${JSON.stringify(result)}`);
  return result.fragments;
}

function dataOf(fragment: Uint8Array): Uint8Array {
  return fragment.subarray((fragment[0]! & 15) * 4);
}

describe("checksum", () => {
  test("matches RFC 1071's worked example and the reference on odd lengths", () => {
    // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
    assert.equal(onesComplementSum(hex("0001f203f4f5f6f7")), 0xddf2);
    assert.equal(internetChecksum(hex("0001f203f4f5f6f7")), 0x220d);
    fc.assert(
      fc.property(payloadArbitrary(2000), fc.uint8Array({ maxLength: 64 }), (a, b) => {
        const evenA = a.subarray(0, a.length & ~1);
        assert.equal(internetChecksum(a), referenceChecksum(a));
        assert.equal(internetChecksum(b, onesComplementSum(evenA)), referenceChecksum(evenA, b));
      }),
    );
  });
});

describe("fragmentIpv4 on a 1500-byte datagram", () => {
  const big = bigUdp();

  test("the datagram itself is what scapy builds", () => {
    assert.equal(big.length, 1500);
    assert.equal(
      toHex(big.subarray(0, 28)),
      "450005dc4d2e00004011138f0a2800020a2800039c42232805c8d131",
    );
    assert.ok(ipv4HeaderChecksumOk(big), "the fixture's header checksum is correct");
  });

  test("to 1280: 1276 then 244 bytes, offsets 0 and 157", () => {
    const fragments = fragmentsOf(big, 1280);
    assert.deepEqual(
      fragments.map((f) => toHex(f.subarray(0, 20))),
      ["450004fc4d2e20004011f46e0a2800020a280003", "450000f44d2e009d401117da0a2800020a280003"],
    );
    assert.deepEqual(fragments.map(summarize), [
      { totalLength: 1276, headerLength: 20, moreFragments: true, offsetUnits: 0 },
      { totalLength: 244, headerLength: 20, moreFragments: false, offsetUnits: 157 },
    ]);
  });

  test("to 576: 572, 572 and 396 bytes, offsets 0, 69 and 138", () => {
    const fragments = fragmentsOf(big, 576);
    assert.deepEqual(
      fragments.map((f) => toHex(f.subarray(0, 20))),
      [
        "4500023c4d2e20004011f72e0a2800020a280003",
        "4500023c4d2e20454011f6e90a2800020a280003",
        "4500018c4d2e008a401117550a2800020a280003",
      ],
    );
    assert.deepEqual(
      fragments.map((f) => [f.length, summarize(f).offsetUnits, summarize(f).moreFragments]),
      [
        [572, 0, true],
        [572, 69, true],
        [396, 138, false],
      ],
    );
  });

  test("to 68: thirty 68-byte fragments of 48 data bytes, then one of 60", () => {
    const fragments = fragmentsOf(big, 68);
    assert.equal(fragments.length, 31);
    for (const [i, fragment] of fragments.entries()) {
      const last = i === 30;
      assert.deepEqual(summarize(fragment), {
        totalLength: last ? 60 : 68,
        headerLength: 20,
        moreFragments: !last,
        offsetUnits: i * 6,
      });
      assert.equal(fragment.length, last ? 60 : 68);
    }
    assert.equal(toHex(fragments[0]!.subarray(0, 20)), "450000444d2e20004011f9260a2800020a280003");
    assert.equal(toHex(fragments[1]!.subarray(0, 20)), "450000444d2e20064011f9200a2800020a280003");
    assert.equal(toHex(fragments[30]!.subarray(0, 20)), "4500003c4d2e00b44011187b0a2800020a280003");
  });

  test("every fragment keeps the other fields, has a correct checksum, and they reassemble", () => {
    for (const mtu of [1280, 576, 68, 1499, 69, 75, 76]) {
      const fragments = fragmentsOf(big, mtu);
      for (const fragment of fragments) {
        assert.ok(fragment.length <= mtu, `a ${fragment.length}-byte fragment for MTU ${mtu}`);
        assert.ok(ipv4HeaderChecksumOk(fragment), `checksum of a fragment for MTU ${mtu}`);
        // version/IHL, ToS, id, TTL, protocol and addresses as in the original
        assert.deepEqual(
          [fragment[1], fragment[4], fragment[5], fragment[8], fragment[9]],
          [big[1], big[4], big[5], big[8], big[9]],
        );
        assert.deepEqual(fragment.subarray(12, 20), big.subarray(12, 20));
      }
      for (const fragment of fragments.slice(0, -1)) {
        assert.equal(
          dataOf(fragment).length % 8,
          0,
          `non-last data is whole 8-byte units (${mtu})`,
        );
      }
      assertSameBytes(reassembleIpv4(fragments), big, `reassembled at MTU ${mtu}`);
    }
  });

  test("a datagram that fits comes back alone and unchanged, DF or not", () => {
    for (const mtu of [1500, 1501, 9000, 65535]) {
      const [only, ...rest] = fragmentsOf(big, mtu);
      assert.deepEqual(only, big);
      assert.equal(rest.length, 0);
    }
    const withDf = buildIpv4({ ...BIG_FIELDS, dontFragment: true, payload: new Uint8Array(100) });
    assert.deepEqual(fragmentsOf(withDf, 576), [withDf]);
  });

  test("bytes past the total length (link padding) are not part of the datagram", () => {
    const padded = new Uint8Array(big.length + 10);
    padded.set(big);
    padded.fill(0xee, big.length);
    assert.deepEqual(fragmentsOf(padded, 1500), [big]);
    assertSameBytes(reassembleIpv4(fragmentsOf(padded, 576)), big, "reassembled");
  });

  test("the reserved flag is carried into every fragment", () => {
    const evil = buildIpv4({ ...BIG_FIELDS, reservedFlag: true, payload: new Uint8Array(1000) });
    const fragments = fragmentsOf(evil, 576);
    assert.equal(fragments.length, 2);
    assert.ok(
      fragments.every((f) => (f[6]! & 0x80) !== 0),
      "the reserved bit is set in each fragment",
    );
    assertSameBytes(reassembleIpv4(fragments), evil, "reassembled");
  });
});

describe("fragmentIpv4 with options", () => {
  // Router Alert (0x94, copied, RFC 2113), Record Route (0x07, not copied) with one slot,
  // No Operation, then End of Option List padding: 12 bytes, a 32-byte header.
  const options = hex("94040000 07070400000000 01");
  const withOptions = buildIpv4({
    ...BIG_FIELDS,
    options,
    payload: Uint8Array.from({ length: 1468 }, (_, i) => i & 0xff),
  });

  test("the first fragment keeps all options, later ones only the copied Router Alert", () => {
    assert.equal(withOptions.length, 1500);
    const fragments = fragmentsOf(withOptions, 576);
    // First: 576 - 32 = 544 data bytes. Later: 24-byte headers, 552 data bytes each.
    assert.deepEqual(fragments.map(summarize), [
      { totalLength: 576, headerLength: 32, moreFragments: true, offsetUnits: 0 },
      { totalLength: 576, headerLength: 24, moreFragments: true, offsetUnits: 68 },
      { totalLength: 396, headerLength: 24, moreFragments: false, offsetUnits: 137 },
    ]);
    assert.deepEqual(fragments[0]!.subarray(20, 32), withOptions.subarray(20, 32));
    for (const later of fragments.slice(1)) {
      assert.equal(toHex(later.subarray(20, 24)), "94040000");
    }
    assertSameBytes(reassembleIpv4(fragments), withOptions, "reassembled");
  });

  test("at 68 bytes a 60-byte header leaves one 8-byte unit; later headers are smaller", () => {
    // 40 bytes of options: Record Route (39 bytes, not copied) and one NOP.
    const longOptions = new Uint8Array(40);
    longOptions.set([0x07, 39, 4]);
    longOptions[39] = 1;
    const packet = buildIpv4({ ...BIG_FIELDS, options: longOptions, payload: new Uint8Array(100) });
    const fragments = fragmentsOf(packet, 68);
    assert.deepEqual(summarize(fragments[0]!), {
      totalLength: 68,
      headerLength: 60,
      moreFragments: true,
      offsetUnits: 0,
    });
    // 92 bytes left, 48 per 20-byte header: 48 then 44.
    assert.deepEqual(fragments.slice(1).map(summarize), [
      { totalLength: 68, headerLength: 20, moreFragments: true, offsetUnits: 1 },
      { totalLength: 64, headerLength: 20, moreFragments: false, offsetUnits: 7 },
    ]);
    assertSameBytes(reassembleIpv4(fragments), packet, "reassembled");
  });

  test("copied options that do not fill a word are padded with End of Option List", () => {
    // Security-like copied option of 3 bytes (0x82), then a not-copied 5-byte option.
    const odd = hex("820300 4405000000");
    const packet = buildIpv4({ ...BIG_FIELDS, options: odd, payload: new Uint8Array(200) });
    const later = fragmentsOf(packet, 100)[1]!;
    assert.equal(summarize(later).headerLength, 24);
    assert.equal(toHex(later.subarray(20, 24)), "82030000");
  });
});

describe("fragmentIpv4 on a fragment", () => {
  const big = bigUdp();
  const [first, middle, last] = fragmentsOf(big, 576);

  test("a middle fragment's pieces continue its offsets and all keep More Fragments", () => {
    const pieces = fragmentsOf(middle!, 68);
    assert.equal(pieces.length, 12); // 552 data bytes, 48 per piece
    assert.deepEqual(
      pieces.map((p) => [summarize(p).offsetUnits, summarize(p).moreFragments]),
      pieces.map((_, i) => [69 + 6 * i, true]),
    );
  });

  test("the last fragment's last piece clears More Fragments; all pieces reassemble", () => {
    const pieces = fragmentsOf(last!, 100);
    assert.deepEqual(
      pieces.map((p) => summarize(p).moreFragments),
      pieces.map((_, i) => i < pieces.length - 1),
    );
    const all = [first!, ...fragmentsOf(middle!, 68), ...pieces];
    assertSameBytes(reassembleIpv4(all), big, "reassembled");
  });
});

describe("fragmentIpv4 refusals", () => {
  const big = bigUdp();

  test("Don't Fragment set on a datagram too big", () => {
    const packet = buildIpv4({ ...BIG_FIELDS, dontFragment: true, payload: new Uint8Array(600) });
    assert.deepEqual(fragmentIpv4(packet, 576), { ok: false, reason: "dont-fragment" });
  });

  test("an MTU below 68, even for a datagram that would fit", () => {
    for (const mtu of [67, 20, 0, -1]) {
      assert.deepEqual(fragmentIpv4(big, mtu), { ok: false, reason: "mtu-too-small" }, `${mtu}`);
    }
    const tiny = buildIpv4({ ...BIG_FIELDS, payload: new Uint8Array(8) });
    assert.deepEqual(fragmentIpv4(tiny, 67), { ok: false, reason: "mtu-too-small" });
  });

  function withHeaderChange(change: (packet: Uint8Array) => void, fix = true): Uint8Array {
    const packet = big.slice();
    change(packet);
    if (fix) {
      const headerLength = (packet[0]! & 15) * 4;
      packet[10] = 0;
      packet[11] = 0;
      const checksum = referenceChecksum(packet.subarray(0, Math.min(headerLength, packet.length)));
      packet[10] = checksum >> 8;
      packet[11] = checksum & 0xff;
    }
    return packet;
  }

  const malformed: [string, Uint8Array][] = [
    ["empty", new Uint8Array(0)],
    ["shorter than a header", big.subarray(0, 19)],
    ["cut before its total length", big.subarray(0, 1499)],
    ["version 6", withHeaderChange((p) => p.set([0x65]))],
    ["version 5", withHeaderChange((p) => p.set([0x55]))],
    ["header length 16", withHeaderChange((p) => p.set([0x44]))],
    ["header length past the packet", withHeaderChange((p) => p.set([0x4f])).subarray(0, 40)],
    ["total length below the header length", withHeaderChange((p) => p.set([0, 19], 2))],
    ["a bad header checksum", withHeaderChange((p) => p.set([p[11]! ^ 1], 11), false)],
    [
      "a fragment running past byte 65535",
      withHeaderChange((p) => {
        p[6] = 0x1f; // offset 8191 units = 65528 bytes, plus 1480 data bytes
        p[7] = 0xff;
      }),
    ],
    [
      "More Fragments on data that is not whole 8-byte units",
      buildIpv4({ ...BIG_FIELDS, moreFragments: true, payload: new Uint8Array(1001) }),
    ],
  ];
  const badOptions: [string, string][] = [
    ["an option of length 0", "07000000"],
    ["an option of length 1", "44010000"],
    ["an option running past the header", "07080400"],
    ["an option type in the last byte, without its length", "01010107"],
  ];
  for (const [name, options] of badOptions) {
    malformed.push([name, buildIpv4({ ...BIG_FIELDS, options: hex(options), payload: big })]);
  }

  for (const [name, packet] of malformed) {
    test(`malformed: ${name}`, () => {
      assert.deepEqual(fragmentIpv4(packet, 576), { ok: false, reason: "malformed" });
      assert.equal(readIpv4Header(packet), undefined);
    });
  }

  test("a non-integer MTU or a packet that is not bytes is a programmer error", () => {
    assert.throws(() => fragmentIpv4(big, 576.5), RangeError);
    assert.throws(() => fragmentIpv4(big, Number.NaN), RangeError);
    assert.throws(() => fragmentIpv4([1, 2, 3] as unknown as Uint8Array, 576), TypeError);
  });
});

describe("fragmentIpv4 properties", () => {
  const mtus = fc.oneof(
    fc.integer({ min: 68, max: 1600 }),
    fc.constantFrom(68, 576, 1280, 1420, 1500),
  );

  test("fragments reassemble to the datagram, fit the MTU and carry correct checksums", () => {
    fc.assert(
      fc.property(ipv4FieldsArbitrary(), mtus, (fields, mtu) => {
        const packet = buildIpv4({ ...fields, dontFragment: false });
        const fragments = fragmentsOf(packet, mtu);
        const copied = copiedOptionsOf(fields.options);
        for (const [i, fragment] of fragments.entries()) {
          assert.ok(fragment.length <= mtu, `fragment ${i} is ${fragment.length} > ${mtu}`);
          assert.ok(ipv4HeaderChecksumOk(fragment), `fragment ${i} has a bad checksum`);
          assert.ok(readIpv4Header(fragment) !== undefined, `fragment ${i} reads back`);
          if (i > 0) {
            const options = fragment.subarray(20, summarize(fragment).headerLength);
            assert.deepEqual([...options.subarray(0, copied.length)], copied);
            assert.ok(
              options.subarray(copied.length).every((b) => b === 0),
              "padding after the copied options is zeros",
            );
          }
        }
        assertSameBytes(reassembleIpv4(fragments), packet, "reassembled");
      }),
      { numRuns: 500 },
    );
  });

  test("fragmenting fragments again still reassembles to the datagram", () => {
    fc.assert(
      fc.property(ipv4FieldsArbitrary(), mtus, mtus, (fields, mtuA, mtuB) => {
        const packet = buildIpv4({ ...fields, dontFragment: false });
        const pieces = fragmentsOf(packet, Math.max(mtuA, mtuB)).flatMap((f) =>
          fragmentsOf(f, Math.min(mtuA, mtuB)),
        );
        assert.ok(
          pieces.every((p) => p.length <= Math.min(mtuA, mtuB)),
          "every piece fits the smaller MTU",
        );
        assertSameBytes(reassembleIpv4(pieces), packet, "reassembled");
      }),
      { numRuns: 300 },
    );
  });

  test("a fragment's pieces cover its data from its offset, the last keeping its MF", () => {
    fc.assert(
      fc.property(ipv4FieldsArbitrary({ fragments: true }), mtus, (fields, mtu) => {
        const packet = buildIpv4({ ...fields, dontFragment: false });
        const pieces = fragmentsOf(packet, mtu);
        let offsetBytes = fields.fragmentOffsetUnits * 8;
        for (const [i, piece] of pieces.entries()) {
          const summary = summarize(piece);
          assert.equal(summary.offsetUnits * 8, offsetBytes);
          const isLast = i === pieces.length - 1;
          assert.equal(summary.moreFragments, isLast ? fields.moreFragments : true);
          offsetBytes += dataOf(piece).length;
        }
        assert.equal(offsetBytes, fields.fragmentOffsetUnits * 8 + fields.payload.length);
        assertSameBytes(
          Uint8Array.from(pieces.flatMap((p) => [...dataOf(p)])),
          fields.payload,
          "the pieces' data is the fragment's data",
        );
      }),
      { numRuns: 300 },
    );
  });

  test("Don't Fragment is refused exactly when the datagram does not fit", () => {
    fc.assert(
      fc.property(ipv4FieldsArbitrary(), mtus, (fields, mtu) => {
        const packet = buildIpv4({ ...fields, dontFragment: true });
        const result = fragmentIpv4(packet, mtu);
        if (packet.length > mtu) assert.deepEqual(result, { ok: false, reason: "dont-fragment" });
        else {
          assert.ok(result.ok && result.fragments.length === 1, "a packet that fits is alone");
          assertSameBytes(result.fragments[0], packet, "a packet that fits is unchanged");
        }
      }),
      { numRuns: 300 },
    );
  });

  test("never throws on arbitrary bytes, and any fragments it gives are valid", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc
            .tuple(
              fc.uint8Array({ minLength: 20, maxLength: 20 }),
              fc.uint8Array({ maxLength: 300 }),
            )
            .map(([header, rest]) => {
              // Mostly IPv4 with a correct checksum, so the deeper checks are reached.
              const packet = Uint8Array.from([...header, ...rest]);
              packet[0] = 0x45;
              packet[10] = 0;
              packet[11] = 0;
              const checksum = referenceChecksum(packet.subarray(0, 20));
              packet[10] = checksum >> 8;
              packet[11] = checksum & 0xff;
              return packet;
            }),
        ),
        fc.integer({ min: -10, max: 2000 }),
        (bytes, mtu) => {
          const result = fragmentIpv4(bytes, mtu);
          if (!result.ok) return;
          for (const fragment of result.fragments) {
            assert.ok(fragment.length <= mtu, "a fragment fits");
            assert.ok(ipv4HeaderChecksumOk(fragment), "a fragment has a correct checksum");
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
