/**
 * Proleptic Gregorian calendar arithmetic on plain integers (days since 1970-01-01).
 *
 * The calendar engine never builds `Date` objects on its hot path: `Date.UTC` maps years 0–99
 * to 1900–1999 and allocation dominates a field-wise `next()`. These are Howard Hinnant's
 * `days_from_civil` / `civil_from_days`, exact for every year a JS timestamp can hold.
 */

export const SECONDS_PER_DAY = 86_400

/** Days since 1970-01-01 of the given civil date (month 1–12, day 1–31). */
export const daysFromCivil = (year: number, month: number, day: number): number => {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const mp = month > 2 ? month - 3 : month + 9
  const doy = Math.floor((153 * mp + 2) / 5) + day - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146_097 + doe - 719_468
}

/** Civil date of a day number; written into `out` as [year, month, day] to avoid allocation. */
export const civilFromDays = (days: number, out: Int32Array | Array<number>): void => {
  const z = days + 719_468
  const era = Math.floor(z / 146_097)
  const doe = z - era * 146_097
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365)
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100))
  const mp = Math.floor((5 * doy + 2) / 153)
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1
  const month = mp < 10 ? mp + 3 : mp - 9
  out[0] = yoe + era * 400 + (month <= 2 ? 1 : 0)
  out[1] = month
  out[2] = day
}

export const isLeapYear = (year: number): boolean => (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0

const MONTH_DAYS = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

export const daysInMonth = (year: number, month: number): number =>
  month === 2 ? (isLeapYear(year) ? 29 : 28) : MONTH_DAYS[month]!

/** 0 = Sunday … 6 = Saturday (1970-01-01 was a Thursday). */
export const weekdayOfDays = (days: number): number => {
  const w = (days + 4) % 7
  return w < 0 ? w + 7 : w
}
