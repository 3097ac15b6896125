// XEP-0082 date and time profiles, as every XEP that carries a timestamp uses them.

// XEP-0082 DateTime: CCYY-MM-DDThh:mm:ss[.sss]TZD, TZD being Z or (+|-)hh:mm.
const DATE_TIME = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(?:(Z)|([+-])([0-9]{2}):([0-9]{2}))$/;

/** Parses an XEP-0082 DateTime strictly; null when the text is not one. */
export function parseDateTime(text: string): Date | null {
  const m = DATE_TIME.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
  const daysInMonth = new Date(Date.UTC(2000, month, 0)).getUTCDate(); // a leap year, for 29 February
  if (day > daysInMonth) return null;
  if (month === 2 && day === 29 && !(year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0))) return null;
  let offsetMinutes = 0;
  if (m[8] === undefined) {
    const offHours = Number(m[10]);
    const offMinutes = Number(m[11]);
    if (offHours > 23 || offMinutes > 59) return null;
    offsetMinutes = (m[9] === '-' ? -1 : 1) * (offHours * 60 + offMinutes);
  }
  const millis = m[7] === undefined ? 0 : Math.floor(Number('0.' + m[7]) * 1000);
  const d = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not move years 0-99 into the twentieth century.
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute - offsetMinutes, second, millis);
  // An offset can carry 0000-01-01 or 9999-12-31 out of the four-digit years, which XEP-0082 cannot
  // write: such a time would be stored and then printed as -000001-… or +010000-….
  const utcYear = d.getUTCFullYear();
  if (utcYear < 0 || utcYear > 9999) return null;
  return d;
}

/** XEP-0082 DateTime in UTC with 'Z'; fractional seconds only when there are some. */
export function formatDateTime(date: Date): string {
  return date.toISOString().replace(/\.000Z$/, 'Z');
}

/** XEP-0082 DateTime in UTC to the second, as delay stamps and entity time carry it. */
export function formatDateTimeSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, 'Z');
}
