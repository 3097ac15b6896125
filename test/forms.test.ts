import { expect } from 'chai';
import { parseForm, buildForm, formValue, formValues, formType, type DataForm } from '../protocol/forms.js';
import { xml } from './xml.js';


// XEP-0004 Example 2 (abridged): a configuration form with every kind of field.
const FORM = `<x xmlns='jabber:x:data' type='form'>
  <title>Bot Configuration</title>
  <instructions>Fill out this form to configure your new bot!</instructions>
  <field type='hidden' var='FORM_TYPE'><value>jabber:bot</value></field>
  <field type='fixed'><value>Section 1: Bot Info</value></field>
  <field type='text-single' label='The name of your bot' var='botname'/>
  <field type='text-multi' label='Helpful description of your bot' var='description'/>
  <field type='boolean' label='Public bot?' var='public'><required/></field>
  <field type='text-private' label='Password for special access' var='password'/>
  <field type='list-multi' label='What features will the bot support?' var='features'>
    <option label='Contests'><value>contests</value></option>
    <option label='News'><value>news</value></option>
    <option label='Polls'><value>polls</value></option>
    <option label='Reminders'><value>reminders</value></option>
    <option label='Search'><value>search</value></option>
    <value>news</value>
    <value>search</value>
  </field>
  <field type='jid-multi' label='People to invite' var='invitelist'>
    <desc>Tell all your friends about your new bot!</desc>
  </field>
</x>`;

describe('data forms (XEP-0004)', () => {
  it('parses a form with every field type', () => {
    const f = parseForm(xml(FORM));
    expect(f.type).to.equal('form');
    expect(f.title).to.equal('Bot Configuration');
    expect(f.instructions).to.deep.equal(['Fill out this form to configure your new bot!']);
    expect(f.fields).to.have.length(8);
    expect(f.fields[1]).to.deep.equal({ type: 'fixed', values: ['Section 1: Bot Info'] });
    expect(f.fields[4]).to.deep.equal({ var: 'public', type: 'boolean', label: 'Public bot?', required: true, values: [] });
    expect(formValues(f, 'features')).to.deep.equal(['news', 'search']);
    expect(f.fields[6]!.options).to.deep.include({ label: 'Polls', value: 'polls' });
    expect(f.fields[7]!.desc).to.equal('Tell all your friends about your new bot!');
    expect(formType(f)).to.equal('jabber:bot');
    expect(formValue(f, 'botname')).to.equal(undefined);
    expect(formValue(f, 'nothing')).to.equal(undefined);
    expect(formValues(f, 'nothing')).to.deep.equal([]);
  });

  it('builds what it parses', () => {
    const f = parseForm(xml(FORM));
    const again = parseForm(xml(buildForm(f).toString()));
    expect(again).to.deep.equal(f);
  });

  it('builds a submitted form', () => {
    const form: DataForm = {
      type: 'submit',
      fields: [
        { var: 'FORM_TYPE', type: 'hidden', values: ['jabber:iq:register'] },
        { var: 'username', values: ['juliet'] },
        { var: 'password', type: 'text-private', values: ['R0m30 & <3'] },
      ],
    };
    const x = buildForm(form);
    expect(x.toString()).to.equal(
      "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>jabber:iq:register</value></field>" +
      "<field var='username'><value>juliet</value></field>" +
      "<field var='password' type='text-private'><value>R0m30 &amp; &lt;3</value></field></x>",
    );
    expect(x.ns).to.equal('jabber:x:data');
    expect(x.getChild('field', 'jabber:x:data')).to.not.equal(undefined);
    expect(formType(parseForm(x))).to.equal('jabber:iq:register');
    expect(formValue(parseForm(x), 'password')).to.equal('R0m30 & <3');
  });

  it('takes FORM_TYPE without a type in submitted forms but not as a visible field', () => {
    expect(formType(parseForm(xml("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:a</value></field></x>")))).to.equal('urn:a');
    expect(formType(parseForm(xml("<x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE' type='text-single'><value>urn:a</value></field></x>")))).to.equal(undefined);
  });

  describe('refuses malformed forms', () => {
    const bad: [string, string][] = [
      ['not a form', "<x xmlns='urn:other' type='form'/>"],
      ['no type', "<x xmlns='jabber:x:data'/>"],
      ['unknown type', "<x xmlns='jabber:x:data' type='poll'/>"],
      ['unknown field type', "<x xmlns='jabber:x:data' type='form'><field var='a' type='colour'/></x>"],
      ['field without var', "<x xmlns='jabber:x:data' type='submit'><field><value>a</value></field></x>"],
      ['duplicate var', "<x xmlns='jabber:x:data' type='submit'><field var='a'/><field var='a'/></x>"],
      ['several values in a single field', "<x xmlns='jabber:x:data' type='submit'><field var='a' type='text-single'><value>1</value><value>2</value></field></x>"],
      ['option without value', "<x xmlns='jabber:x:data' type='form'><field var='a' type='list-single'><option label='x'/></field></x>"],
      ['bad boolean', "<x xmlns='jabber:x:data' type='submit'><field var='a' type='boolean'><value>yes</value></field></x>"],
    ];
    for (const [what, text] of bad) it(what, () => expect(() => parseForm(xml(text))).to.throw(Error));
  });
});
