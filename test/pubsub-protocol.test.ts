// The pubsub wire codec: configuration forms read and written, publish-options checked, errors.
import { expect } from 'chai';
import { PUBSUB, configForm, parseConfigForm, pubsubError } from '../protocol/pubsub.js';
import { StanzaError } from '../protocol/errors.js';
import { xml } from './xml.js';

const submit = (fields: string, type: string = PUBSUB.publishOptions): ReturnType<typeof xml> => xml(`<x xmlns='jabber:x:data' type='submit'>
  <field var='FORM_TYPE' type='hidden'><value>${type}</value></field>${fields}</x>`);

describe('pubsub protocol', () => {
  it('reads publish-options with booleans normalised and max_items as a number or max', () => {
    const c = parseConfigForm(submit(`<field var='pubsub#persist_items'><value>1</value></field>
      <field var='pubsub#max_items'><value>max</value></field><field var='pubsub#access_model'><value>whitelist</value></field>`), PUBSUB.publishOptions);
    expect(c).to.deep.equal({ 'pubsub#persist_items': 'true', 'pubsub#max_items': 'max', 'pubsub#access_model': 'whitelist' });
  });

  it('refuses unknown fields, bad values and the wrong FORM_TYPE', () => {
    const cond = (f: () => unknown): string => { try { f(); } catch (e) { return (e as StanzaError).condition; } return 'none'; };
    expect(cond(() => parseConfigForm(submit(`<field var='pubsub#nope'><value>1</value></field>`), PUBSUB.publishOptions))).to.equal('not-acceptable');
    expect(cond(() => parseConfigForm(submit(`<field var='pubsub#access_model'><value>everyone</value></field>`), PUBSUB.publishOptions))).to.equal('not-acceptable');
    expect(cond(() => parseConfigForm(submit(`<field var='pubsub#max_items'><value>-1</value></field>`), PUBSUB.publishOptions))).to.equal('not-acceptable');
    expect(cond(() => parseConfigForm(submit('', PUBSUB.nodeConfig), PUBSUB.publishOptions))).to.equal('bad-request');
  });

  it('writes the configuration form with its current values, booleans as 1/0', () => {
    const x = configForm({ 'pubsub#persist_items': 'false', 'pubsub#max_items': '5', 'pubsub#access_model': 'open' });
    const field = (v: string) => x.getChildren('field').find((f) => f.attrs.var === v)!;
    expect(field('FORM_TYPE').getChildText('value')).to.equal(PUBSUB.nodeConfig);
    expect(field('pubsub#persist_items').getChildText('value')).to.equal('0');
    expect(field('pubsub#max_items').getChildText('value')).to.equal('5');
    expect(field('pubsub#access_model').getChildren('option').map((o) => o.getChildText('value')))
      .to.deep.equal(['authorize', 'open', 'presence', 'roster', 'whitelist']);
    expect(field('pubsub#title').getChildren('value')).to.have.length(0);
  });

  it('carries the pubsub#errors condition beside the stanza condition', () => {
    const e = pubsubError('conflict', 'precondition-not-met', 'Field does not match: access_model').toElement();
    expect(e.getChild('conflict', 'urn:ietf:params:xml:ns:xmpp-stanzas')).to.not.equal(undefined);
    expect(e.getChild('precondition-not-met', PUBSUB.errors)).to.not.equal(undefined);
  });
});
