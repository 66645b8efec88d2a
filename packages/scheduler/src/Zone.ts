/**
 * IANA time zones through `Intl`, as the calendar engine uses them: shared with barto-cli's
 * rendering and parsing of instants so that there is one place that asks `Intl` about zones.
 */
export { canonicalZone, offsetSeconds, wallSeconds } from "./internal/zone.js"
