// Loaded into the shared load generator (node --import) by `bench/muc.mjs --governed`: every room the load
// creates through the shared lib/muc.mjs createRoom (fan-out rooms, the join-history room) is, right after
// its creation and before anyone else joins, given the members group:bench-users by the Perch CLI
// (`perch room set ROOM --members group:bench-users`, through the running server's admin socket).
// The room itself was created in the category bench by its owner's config form (the one category the
// owner may create in is the form's default). The CLI command is in PERCH_GOVERNED_CLI (a JSON argv).
import { register } from 'node:module';

// Loaded twice: by --import in the main thread (registers this file as the loader), then as the loader.
if (!import.meta.url.endsWith('?loader')) register(new URL('./pchat-governed-hook.mjs?loader', import.meta.url));

/** The module loader hook: appends a wrapper of createRoom to lib/muc.mjs. */
export async function load(url, context, nextLoad) {
  const r = await nextLoad(url, context);
  if (!/\/lib\/muc\.mjs$/.test(new URL(url).pathname)) return r;
  const source = typeof r.source === 'string' ? r.source : Buffer.from(r.source).toString('utf8');
  const govern = new URL('./pchat-governed-room.mjs', import.meta.url).href;
  return {
    ...r,
    source: `${source}
;{ const created = createRoom;
   createRoom = async function (owner, room, opts) {
     const out = await created(owner, room, opts);
     await (await import(${JSON.stringify(govern)})).governRoom(room);
     return out;
   }; }
`,
  };
}
