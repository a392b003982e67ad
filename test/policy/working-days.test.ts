/** Deadlines in working days: weekends skipped, holidays skipped, make-up days counted, local calendar. */
import t from 'tap'
import { addWorkingDays, isWorkingDay, localDate, workingDaysLeft, DEFAULT_WORKING_DAYS, type WorkingDays } from '../../src/policy/working-days.js'

const cst = (s: string): number => Date.parse(`${s}+08:00`)
const iso = (ms: number): string => new Date(ms).toISOString()

t.test('five working days from a Wednesday end on the next Wednesday at midnight (China time)', async (t) => {
  // Wed 2026-12-02 10:00 +08:00 → Thu, Fri, Mon, Tue, Wed → end of Wed 2026-12-09 = 2026-12-09T16:00Z
  t.equal(iso(addWorkingDays(cst('2026-12-02T10:00:00'), 5, DEFAULT_WORKING_DAYS)), '2026-12-09T16:00:00.000Z')
  // filed on a Saturday: Mon, Tue → end of Tue
  t.equal(iso(addWorkingDays(cst('2026-12-05T23:59:00'), 2, DEFAULT_WORKING_DAYS)), '2026-12-08T16:00:00.000Z')
  // the local day, not the UTC one: 2026-12-04T20:00Z is already Saturday in China
  t.equal(localDate(Date.parse('2026-12-04T20:00:00Z'), DEFAULT_WORKING_DAYS), '2026-12-05')
  t.equal(iso(addWorkingDays(Date.parse('2026-12-04T20:00:00Z'), 1, DEFAULT_WORKING_DAYS)), '2026-12-07T16:00:00.000Z')
  t.equal(addWorkingDays(cst('2026-12-02T10:00:00'), 0, DEFAULT_WORKING_DAYS), cst('2026-12-03T00:00:00'), '0 days: the end of the day of filing')
})

t.test('holidays are skipped and make-up working days count', async (t) => {
  const cal: WorkingDays = { utcOffsetMinutes: 480, holidays: ['2026-10-01', '2026-10-02', '2026-10-05', '2026-10-06', '2026-10-07'], workdays: ['2026-10-10'] }
  t.notOk(isWorkingDay('2026-10-01', cal))
  t.ok(isWorkingDay('2026-10-10', cal), 'a Saturday worked instead of a holiday')
  // filed Wed 2026-09-30: Oct 1-7 holidays or weekend, Oct 8 (Thu), 9 (Fri), 10 (Sat, make-up) → end of Oct 10
  t.equal(iso(addWorkingDays(cst('2026-09-30T09:00:00'), 3, cal)), '2026-10-10T16:00:00.000Z')
  t.throws(() => addWorkingDays(0, -1, cal), RangeError)
  t.throws(() => addWorkingDays(0, 1.5, cal), RangeError)
})

t.test('working days left before a deadline, as the console shows them', async (t) => {
  const filed = cst('2026-12-02T10:00:00') // Wednesday
  const due = addWorkingDays(filed, 5, DEFAULT_WORKING_DAYS) // end of Wed 2026-12-09
  t.equal(workingDaysLeft(filed, due, DEFAULT_WORKING_DAYS), 5, 'on the day of filing: all of them')
  t.equal(workingDaysLeft(cst('2026-12-05T12:00:00'), due, DEFAULT_WORKING_DAYS), 3, 'Saturday: Mon, Tue, Wed')
  t.equal(workingDaysLeft(cst('2026-12-08T09:00:00'), due, DEFAULT_WORKING_DAYS), 1, 'Tuesday: Wednesday left')
  t.equal(workingDaysLeft(cst('2026-12-09T09:00:00'), due, DEFAULT_WORKING_DAYS), 0, 'due by the end of today')
  t.equal(workingDaysLeft(cst('2026-12-10T09:00:00'), due, DEFAULT_WORKING_DAYS), 0, 'past: 0 (the list says overdue)')
  const cal: WorkingDays = { utcOffsetMinutes: 480, holidays: ['2026-10-01', '2026-10-02', '2026-10-05', '2026-10-06', '2026-10-07'], workdays: ['2026-10-10'] }
  const d = addWorkingDays(cst('2026-09-30T09:00:00'), 3, cal)
  t.equal(workingDaysLeft(cst('2026-09-30T09:00:00'), d, cal), 3, 'holidays skipped, the make-up day counted')
})
