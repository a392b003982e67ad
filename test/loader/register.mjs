/** `--import` entry for the tests: registers ./ts-transpile.mjs (see there why). */
import { register } from 'node:module'

register('./ts-transpile.mjs', import.meta.url)
