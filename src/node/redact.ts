/** pino redaction paths for every logger a node creates: nothing from request bodies or credentials reaches a log line. */
export const REDACT = {
  paths: ['req.headers.authorization', 'req.headers.cookie', 'body', 'disclosures', '*.disclosures', 'subjects', '*.subjects'],
  censor: '[redacted]',
}
