import { expect } from 'chai';
import { withConfig, errorOf } from './config-kit.js';


describe('config: upload', () => {
  it('defaults: upload.<domain> on 0.0.0.0:5281, 20,000 KB, 1 GB per user, 30 days, 5-minute slots', async () => {
    const c = await withConfig('domain: example.com\n');
    expect(c.listen.upload).to.deep.equal({ host: '0.0.0.0', port: 5281 });
    expect(c.upload).to.deep.equal({
      domain: 'upload.example.com', publicUrl: null, maxFileSizeKb: 20000, quotaPerUserMb: 1024, quotaPerServiceMb: null,
      expireUnreferencedDays: 30, slotSeconds: 300,
    });
  });

  it('takes its keys, the port from PERCH_UPLOAD_PORT, and null to turn the listener off', async () => {
    const c = await withConfig('upload:\n  publicUrl: https://files.example.com/x/\n  quotaPerUserMb: 0.5\n  expireUnreferencedDays: null\n', { PERCH_UPLOAD_PORT: '18080' });
    expect(c.upload.publicUrl).to.equal('https://files.example.com/x');
    expect(c.upload.quotaPerUserMb).to.equal(0.5);
    expect(c.upload.expireUnreferencedDays).to.equal(null);
    expect(c.listen.upload!.port).to.equal(18080);
    expect((await withConfig('listen:\n  upload: null\n')).listen.upload).to.equal(null);
  });

  it('names the key and why when a value is wrong', async () => {
    expect(await errorOf('upload:\n  maxFileSizeKb: 0\n')).to.match(/^config: upload\.maxFileSizeKb: /);
    expect(await errorOf('upload:\n  quotaPerUserMb: -1\n')).to.match(/^config: upload\.quotaPerUserMb: /);
    expect(await errorOf('upload:\n  slotSeconds: 1\n')).to.match(/^config: upload\.slotSeconds: /);
    expect(await errorOf('upload:\n  publicUrl: ftp://x\n')).to.match(/^config: upload\.publicUrl: /);
    expect(await errorOf('upload:\n  domain: localhost\n')).to.match(/^config: upload\.domain: /);
    expect(await errorOf('upload:\n  domain: conference.localhost\n')).to.match(/already a MUC service/);
    expect(await errorOf('upload:\n  bogus: 1\n')).to.match(/^config: upload\.bogus: unknown key/);
  });
});
