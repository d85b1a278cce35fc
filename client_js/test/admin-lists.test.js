// The admin page's list logic without a browser: paging through the homes, and rebasing the
// admin's unsaved edits onto a newer saved version after a version conflict.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mergeFields, mergeGallery } from '../src/admin/merge.js';
import { createPager, pageSize } from '../src/admin/pager.js';

/** GET /api/homes over an in-memory list, with the server's answer shape and bounds. */
function homesSource(homes) {
  const calls = [];
  const fetchPage = async ({ limit, offset }) => {
    calls.push({ limit, offset });
    return { homes: homes.slice(offset, offset + limit), limit, offset };
  };
  return { fetchPage, calls };
}

const homesNamed = (n) => Array.from({ length: n }, (_, i) => ({ id: `h${i}`, name: `Home ${i}` }));

test('the pager reaches every home, one page at a time, and knows when it is done', async () => {
  const { fetchPage, calls } = homesSource(homesNamed(7));
  const pager = createPager(fetchPage, 3);
  const seen = [];
  while (!pager.done) seen.push(...(await pager.next()));
  assert.deepEqual(seen.map((h) => h.id), ['h0', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6']);
  assert.deepEqual(calls, [{ limit: 3, offset: 0 }, { limit: 3, offset: 3 },
    { limit: 3, offset: 6 }]);
  assert.deepEqual(await pager.next(), []); // asks no more once done
  assert.equal(calls.length, 3);
});

test('a full last page costs one more request that finds none', async () => {
  const { fetchPage, calls } = homesSource(homesNamed(4));
  const pager = createPager(fetchPage, 2);
  const seen = [];
  while (!pager.done) seen.push(...(await pager.next()));
  assert.equal(seen.length, 4);
  assert.equal(calls.length, 3);
});

test('a home shifted into the next page by a deletion is not shown twice', async () => {
  const homes = homesNamed(5);
  const { fetchPage } = homesSource(homes);
  const pager = createPager(fetchPage, 2);
  const first = await pager.next();
  homes.splice(0, 1); // someone deletes h0: h2 is now at offset 1, h3 at 2
  const second = await pager.next();
  assert.deepEqual([...first, ...second].map((h) => h.id), ['h0', 'h1', 'h3', 'h4']);
});

test('a failed page can be asked again from the same offset', async () => {
  let fail = true;
  const { fetchPage, calls } = homesSource(homesNamed(3));
  const pager = createPager(async (query) => {
    if (fail) {
      fail = false;
      throw new Error('network');
    }
    return fetchPage(query);
  }, 2);
  await assert.rejects(pager.next());
  assert.deepEqual((await pager.next()).map((h) => h.id), ['h0', 'h1']);
  assert.deepEqual(calls[0], { limit: 2, offset: 0 });
});

test('page sizes from settings stay within the server bounds', () => {
  assert.equal(pageSize(null), 50);
  assert.equal(pageSize('abc'), 50);
  assert.equal(pageSize('0'), 50);
  assert.equal(pageSize('2.5'), 50);
  assert.equal(pageSize('7'), 7);
  assert.equal(pageSize(5000), 200);
});

test('fields: the admin edits win, untouched fields take the server value', () => {
  const base = { name: 'Old', address: 'Street 1', description: 'Plain' };
  const local = { name: 'Renamed', address: 'Street 1', description: 'Plain' };
  const server = { name: 'Old', address: 'Street 2', description: 'Changed elsewhere' };
  assert.deepEqual(mergeFields(base, local, server), {
    values: { name: 'Renamed', address: 'Street 2', description: 'Changed elsewhere' },
    kept: ['name'], clashes: [], taken: ['address', 'description'],
  });
});

test('fields: both changed the same field, the admin keeps theirs and hears of the clash', () => {
  const merged = mergeFields({ name: 'A' }, { name: 'Mine' }, { name: 'Theirs' });
  assert.deepEqual(merged, { values: { name: 'Mine' }, kept: ['name'], clashes: ['name'],
    taken: [] });
  // The same edit on both sides is no clash; a missing (null) field counts as empty.
  assert.deepEqual(mergeFields({ name: null }, { name: 'X' }, { name: 'X' }).clashes, []);
  assert.deepEqual(mergeFields({}, { address: '' }, { address: null }).values, { address: '' });
});

const image = (id, caption = '') => ({ key: `img-${id}`, kind: 'image', imageId: id, caption });
const upload = (key, caption = '') => ({ key, kind: 'upload', caption });
const shape = (entries) => entries.map((e) => `${e.imageId ?? e.key}:${e.caption}`);

test('gallery: untouched order takes the server order; edited captions stay; uploads go last',
  () => {
    const base = [image(1, 'a'), image(2, 'b'), image(3, 'c')];
    const local = [image(1, 'a'), image(2, 'mine'), image(3, 'c'), upload('u1', 'new')];
    const server = [image(3, 'c'), image(1, 'theirs'), image(2, 'b'), image(4, 'added')];
    const merged = mergeGallery(base, local, server);
    assert.deepEqual(shape(merged.entries), ['3:c', '1:theirs', '2:mine', '4:added', 'u1:new']);
    assert.deepEqual(merged.keptCaptions, ['img-2']);
    assert.equal(merged.takenCaptions, 1); // image 1's, changed elsewhere only
    assert.equal(merged.keptOrder, false);
    assert.equal(merged.removed, 0);
    assert.equal(merged.entries.at(-1), local.at(-1)); // the upload is the same object
  });

test('gallery: the admin order stays; server deletions go; server additions come last', () => {
  const base = [image(1), image(2), image(3)];
  const local = [image(3), upload('u1'), image(1), image(2)];
  const server = [image(1), image(2), image(5)]; // 3 deleted elsewhere, 5 added
  const merged = mergeGallery(base, local, server);
  assert.deepEqual(shape(merged.entries), ['u1:', '1:', '2:', '5:']);
  assert.equal(merged.keptOrder, true);
});

test('gallery: moving a new photo in front of saved ones is an order change', () => {
  const merged = mergeGallery([image(1)], [upload('u1'), image(1)], [image(1), image(2)]);
  assert.deepEqual(shape(merged.entries), ['u1:', '1:', '2:']);
  assert.equal(merged.keptOrder, true);
});

test('gallery: a photo the admin removed stays removed and is counted', () => {
  const base = [image(1), image(2)];
  const merged = mergeGallery(base, [image(2)], [image(1, 'recaptioned'), image(2)]);
  assert.deepEqual(shape(merged.entries), ['2:']);
  assert.equal(merged.removed, 1);
  assert.equal(merged.keptOrder, false);
});

test('gallery: a caption the admin changed to what the server has now is not marked', () => {
  const merged = mergeGallery([image(1, 'a')], [image(1, 'b')], [image(1, 'b')]);
  assert.deepEqual(merged.keptCaptions, []);
  assert.deepEqual(shape(merged.entries), ['1:b']);
});
