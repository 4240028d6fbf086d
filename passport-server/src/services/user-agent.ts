/**
 * A short, human description of a browser from its User-Agent ("Chrome 156 on Linux"), for
 * "Your devices" and sign-in requests. Best effort: anything unrecognised is "a browser" on
 * whatever system could be read, never the raw header (long, and the sender chose it).
 */
const browsers: [RegExp, string][] = [
  [/Edg\/(\d+)/, 'Edge'],
  [/OPR\/(\d+)/, 'Opera'],
  [/Firefox\/(\d+)/, 'Firefox'],
  [/HeadlessChrome\/(\d+)/, 'Headless Chrome'],
  [/Chrome\/(\d+)/, 'Chrome'],
  [/Version\/(\d+)[^ ]* (?:Mobile\/\S+ )?Safari\//, 'Safari'],
]
const systems: [RegExp, string][] = [
  [/Android/, 'Android'],
  [/iPhone|iPad|iPod/, 'iOS'],
  [/Windows/, 'Windows'],
  [/Mac OS X|Macintosh/, 'macOS'],
  [/CrOS/, 'ChromeOS'],
  [/Linux/, 'Linux'],
]

export function describeUserAgent(userAgent: string): string {
  const browser = browsers.find(([re]) => re.test(userAgent))
  const system = systems.find(([re]) => re.test(userAgent))?.[1]
  const name = browser ? `${browser[1]} ${browser[0].exec(userAgent)?.[1]}` : 'A browser'
  return system ? `${name} on ${system}` : name
}
