// XEP-0082 date and time: parseDateTime returns null or a valid Date, and what formatDateTime prints
// of it parses back to the same instant. XEP-0203 delay stamps are built from the same Dates.
import { check, type FuzzTarget } from '../target.js';

export const datetimeTarget: FuzzTarget = {
  name: 'datetime',
  files: ['datetime', 'delay'],
  maxLen: 256,
  dictionary: ['T', 'Z', '+', '-', ':', '.', '0000', '9999', '1970-01-01', '2000-02-29', '1900-02-29', '23:59:59', '24:00:00',
    '00:00:00', '.999', '.0000001', '+14:00', '-23:59', '+00:00', '1969-12-31T23:59:59Z', '0000-01-01T00:00:00+01:00',
    '9999-12-31T23:59:59-01:00'],
  setup(p) {
    const { parseDateTime, formatDateTime, formatDateTimeSeconds } = p.datetime;
    const { buildDelay } = p.delay;
    return (data) => {
      const text = data.toString('latin1');
      const d = parseDateTime(text);
      if (d === null) return;
      check(!Number.isNaN(d.getTime()), `${JSON.stringify(text)} parses to an invalid Date`);
      const printed = formatDateTime(d);
      const back = parseDateTime(printed);
      check(back !== null && back.getTime() === d.getTime(), `${JSON.stringify(text)} -> ${printed}, which does not parse back`);
      const seconds = parseDateTime(formatDateTimeSeconds(d));
      check(seconds !== null && Math.floor(d.getTime() / 1000) * 1000 === seconds.getTime(), `${printed} to the second does not parse back`);
      const stamp = buildDelay('example.com', d).attrs.stamp!;
      check(parseDateTime(stamp)?.getTime() === d.getTime(), `delay stamp ${stamp} does not parse back`);
    };
  },
};
