/**
 * Deadlines in working days (docs/GOVERNANCE.md "Deadlines"). Local rules on government data
 * sharing count answers in working days (工作日): e.g. 2 for the first review of an application and
 * 5 for the answer. A day is a calendar day at the configured UTC offset (China: +08:00); Saturdays
 * and Sundays are skipped, so are the listed holidays, and listed make-up working days (调休, a
 * weekend day worked in exchange for a holiday) count as working days.
 *
 * A deadline of N working days from an instant is the end of the N-th working day after the day
 * of that instant (the day of filing itself is not counted), i.e. the next local midnight.
 */
import { z } from 'zod'

const DAY_MS = 86_400_000
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/

export const WorkingDaysSchema = z.strictObject({
  /** offset of the local calendar from UTC, minutes (default +480: China Standard Time) */
  utcOffsetMinutes: z.number().int().min(-720).max(840).default(480),
  /** public holidays, YYYY-MM-DD in the local calendar: never working days */
  holidays: z.array(z.string().regex(ISO_DATE, 'YYYY-MM-DD')).default([]),
  /** make-up working days (a Saturday or Sunday worked instead of a holiday), YYYY-MM-DD */
  workdays: z.array(z.string().regex(ISO_DATE, 'YYYY-MM-DD')).default([]),
})
export type WorkingDays = z.infer<typeof WorkingDaysSchema>

export const DEFAULT_WORKING_DAYS: WorkingDays = { utcOffsetMinutes: 480, holidays: [], workdays: [] }

/** The local calendar date (YYYY-MM-DD) of instant `at`. */
export function localDate(at: number, cal: WorkingDays): string {
  return new Date(at + cal.utcOffsetMinutes * 60_000).toISOString().slice(0, 10)
}

/** Whether the local date `date` (YYYY-MM-DD) is a working day. */
export function isWorkingDay(date: string, cal: WorkingDays): boolean {
  if (cal.workdays.includes(date)) return true
  if (cal.holidays.includes(date)) return false
  const dow = new Date(`${date}T00:00:00Z`).getUTCDay()
  return dow !== 0 && dow !== 6
}

/**
 * The instant `days` working days after `from`: the local midnight ending the `days`-th working
 * day after the day of `from`. @throws RangeError for a negative or fractional `days`
 */
export function addWorkingDays(from: number, days: number, cal: WorkingDays): number {
  if (!Number.isSafeInteger(days) || days < 0) throw new RangeError('days: expected a non-negative integer')
  const offset = cal.utcOffsetMinutes * 60_000
  // local midnight starting the day of `from`, as a UTC instant
  let dayStart = Math.floor((from + offset) / DAY_MS) * DAY_MS - offset
  let left = days
  // at most a year of holidays in a row is plausible; bound the walk all the same
  for (let guard = 0; left > 0 && guard < 3660; guard++) {
    dayStart += DAY_MS
    if (isWorkingDay(localDate(dayStart, cal), cal)) left--
  }
  return dayStart + DAY_MS
}

/**
 * The working days left at `now` before deadline `due` (an instant `addWorkingDays` gave): the
 * working days after the day of `now` that end by `due`. 0 when `due` is the end of today, or has
 * passed (the caller says overdue).
 */
export function workingDaysLeft(now: number, due: number, cal: WorkingDays): number {
  const offset = cal.utcOffsetMinutes * 60_000
  // local midnight starting the day after `now`
  let dayStart = (Math.floor((now + offset) / DAY_MS) + 1) * DAY_MS - offset
  let n = 0
  for (let guard = 0; dayStart + DAY_MS <= due && guard < 3660; guard++) {
    if (isWorkingDay(localDate(dayStart, cal), cal)) n++
    dayStart += DAY_MS
  }
  return n
}
