/**
 * The membership commands of `weft`: invite, members, forget. They drive the running
 * daemon through its control API; `weft join` is `weft up --join` (cli.ts).
 */
import type { Command } from "commander";
import type { AttachView, InviteView, MembersView, WireguardInviteView } from "../daemon/views.ts";
import { renderQr } from "../daemon/wireguard-leaf.ts";
import { collect, type Json, parseDuration, print } from "./output.ts";

type CallDaemon = (
  method: "GET" | "POST",
  path: string,
  body?: Record<string, unknown>,
) => Promise<unknown>;

export type { CallDaemon };

export function addMembershipCommands(program: Command, daemon: CallDaemon): void {
  const invite = program
    .command("invite")
    .description("print an invite token with which a new peer joins this mesh (weft join TOKEN)")
    .option("--ttl <duration>", "how long the token is valid: 90s, 30m, 24h, 7d", "24h")
    .option("--uses <n>", "how many peers may join with it", "1")
    .option("--name <nickname>", "the nickname the joiner gets")
    .option(
      "--endpoint <host:port>",
      "another address the joiner may reach this peer at, e.g. a public one (repeatable)",
      collect,
    )
    .option(
      "--wireguard <name>",
      "instead, admit a stock WireGuard client NAME through this peer and print its wg-quick file",
    )
    .option("--qr", "with --wireguard: also print the file as a QR code for the phone apps")
    .option("--json", "print JSON")
    .action(
      async (
        options: Json & {
          ttl: string;
          uses: string;
          name?: string;
          endpoint?: string[];
          wireguard?: string;
          qr?: boolean;
        },
      ) => {
        if (options.wireguard !== undefined) {
          if ((options.endpoint?.length ?? 0) > 1)
            throw new Error("--wireguard takes one --endpoint");
          const leaf = (await daemon("POST", "/v1/invite/wireguard", {
            name: options.wireguard,
            endpoint: options.endpoint?.[0],
          })) as WireguardInviteView;
          print(options, leaf, (l) =>
            options.qr ? `${l.config}\n${renderQr(l.config)}` : l.config,
          );
          return;
        }
        const uses = Number(options.uses);
        if (!Number.isSafeInteger(uses) || uses < 1 || uses > 1000) {
          throw new Error(`Invalid --uses "${options.uses}": 1 to 1000`);
        }
        const result = (await daemon("POST", "/v1/invite", {
          ttlMs: parseDuration(options.ttl, "--ttl"),
          uses,
          name: options.name,
          endpoints: options.endpoint ?? [],
        })) as InviteView;
        print(options, result, (r) => r.token);
        if (!options.json) {
          process.stderr.write(`invitation ${r(result)}: on the new peer run  weft join <token>\n`);
        }
      },
    );
  invite
    .command("list")
    .description("this peer's invitations: open, used up, expired, revoked")
    .option("--json", "print JSON")
    // `invite` has its own --json, which commander gives the parent: read both.
    .action(async (_options: Json, command: Command) => {
      const options = command.optsWithGlobals() as Json;
      const list = (await daemon("GET", "/v1/invites")) as Omit<InviteView, "token">[];
      print(options, list, (all) =>
        all.length === 0
          ? "no invitations"
          : all
              .map(
                (i) =>
                  `${i.id} ${i.state} ${i.usesLeft}/${i.uses} uses left, expires ${i.expiresAt}${i.nickname ? ` for ${i.nickname}` : ""}${i.usedBy.length > 0 ? `, used by ${i.usedBy.join(" ")}` : ""}`,
              )
              .join("\n"),
      );
    });
  invite
    .command("revoke")
    .description("revoke an invitation (its id or first characters, from weft invite list) or all")
    .argument("<id>")
    .option("--json", "print JSON")
    .action(async (id: string, _options: Json, command: Command) => {
      const options = command.optsWithGlobals() as Json;
      const result = (await daemon("POST", "/v1/invite/revoke", { id })) as { revoked: number };
      print(options, result, (r) => `revoked ${r.revoked} invitation(s)`);
    });

  program
    .command("members")
    .description("the members of the mesh: who admitted whom, and who was removed")
    .option("--json", "print JSON")
    .action(async (options: Json) => {
      const view = (await daemon("GET", "/v1/members")) as MembersView;
      print(options, view, (v) =>
        [
          `mesh ${v.meshId}: ${v.members.length} member(s)`,
          ...v.members.map(
            (m) =>
              `${m.publicKey} ${m.nickname || "-"}${m.self ? " (this peer)" : ""} ${m.admittedBy === null ? "founder" : `admitted by ${m.admittedByNickname}`} ${m.at}`,
          ),
          ...v.removed.map(
            (m) => `${m.publicKey} ${m.nickname} removed by ${m.removedByNickname} ${m.at}`,
          ),
        ].join("\n"),
      );
    });

  program
    .command("forget")
    .description(
      "remove a member from the mesh for good (nickname, public key or its first characters)",
    )
    .argument("<peer>")
    .option("--json", "print JSON")
    .action(async (peer: string, options: Json) => {
      const result = (await daemon("POST", "/v1/forget", { peer })) as {
        peer: string;
        nickname: string;
        heir?: string;
      };
      print(
        options,
        result,
        (r) =>
          `removed ${r.nickname || r.peer} (${r.peer}) from the mesh${r.heir ? `; its addresses go to ${r.heir}` : ""}`,
      );
    });
}

/** `weft attach` and `weft detach`: containers by network namespace. */
export function addAttachCommands(program: Command, daemon: CallDaemon): void {
  program
    .command("attach")
    .description(
      "give a network namespace (ip netns name, container PID or path) a mesh address, routes and DNS",
    )
    .argument("<netns>")
    .option("--name <name>", "register this name for it in the mesh's DNS")
    .option("--ip <address>", "this address instead of the next free one")
    .option("--json", "print JSON")
    .action(async (netns: string, options: Json & { name?: string; ip?: string }) => {
      const view = (await daemon("POST", "/v1/attach", {
        netns,
        name: options.name,
        ip: options.ip,
      })) as AttachView;
      print(
        options,
        view,
        (v) =>
          `${v.netns} attached: ${v.address}${v.name ? ` (${v.name})` : ""} via ${v.hostInterface}${v.changed ? "" : " (already)"}`,
      );
    });
  program
    .command("detach")
    .description("undo weft attach: the namespace's link, routes, resolver, address and name go")
    .argument("<netns>")
    .option("--json", "print JSON")
    .action(async (netns: string, options: Json) => {
      const view = (await daemon("POST", "/v1/detach", { netns })) as {
        netns: string;
        address: string | null;
      };
      print(
        options,
        view,
        (v) => `${v.netns} detached${v.address ? `; ${v.address} released` : ""}`,
      );
    });
}

function r(view: InviteView): string {
  return `${view.id} (${view.uses} use${view.uses === 1 ? "" : "s"}, until ${view.expiresAt})`;
}
