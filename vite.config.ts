import { resolve } from 'node:path'
import { defineConfig, type UserConfig } from 'vite'

const here = import.meta.dirname
const frameSrc = resolve(here, 'passport-frame/src')

/**
 * One config, four builds (`npm run build` runs them all):
 * - default: the demo sites' pages (multi-page app) into dist/sites/
 * - `--mode frame`: the frame's script, served by the passport as /frame.js
 * - `--mode sdk`:   the SDK for a classic <script> tag, served as /passport.js
 * - `--mode esm`:   the SDK as an ES module, served as /passport.mjs
 * - `--mode passkey`: the passport pages' passkey script, served as /passkey.js
 * - `--mode signin`: the sign-in page's SCRAM client, served as /sign-in.js
 * - `--mode admin`: the operator console, served to admins only as /admin/console.js
 * Each passport file is a single self-contained script (no chunks) with a fixed name, because
 * sites link to it by URL.
 */
const passportFiles: Record<string, { entry: string; format: 'es' | 'iife'; file: string }> = {
  frame: { entry: `${frameSrc}/frame/main.ts`, format: 'es', file: 'frame.js' },
  sdk: { entry: `${frameSrc}/embed/script-tag.ts`, format: 'iife', file: 'passport.js' },
  esm: { entry: `${frameSrc}/embed/index.ts`, format: 'es', file: 'passport.mjs' },
  passkey: { entry: `${frameSrc}/pages/passkey.ts`, format: 'iife', file: 'passkey.js' },
  signin: { entry: `${frameSrc}/sign-in/main.ts`, format: 'es', file: 'sign-in.js' },
  admin: { entry: resolve(here, 'passport-admin/src/main.ts'), format: 'es', file: 'admin.js' },
}

/** On-demand chunks of the frame and the SDK (module name -> the file the passport serves, routes/frame.ts). */
const onDemandChunks: Record<string, string> = {
  'approval-prompt': 'frame-approval.js', // when another device asks to sign in
  'shared-state': 'frame-shared.js', // FedCM sites' frames
  'continue-button': 'frame-continue.js', // when a site shows "Continue with Passport"
  extras: 'passport-extras.mjs', // the SDK's occasional parts (embed/extras.ts), next to passport.mjs
  session: 'frame-session.js', // once the frame holds or hands out a sign-in, or must refresh
  'sealed-ask': 'frame-sealed.js', // sealed asks (jose), when another device's request details are fetched
}

export default defineConfig(({ mode }): UserConfig => {
  const lib = passportFiles[mode]
  if (lib) {
    return {
      // A classic script cannot carry chunks: the script-tag SDK fetches the module SDK's
      // `passport-extras.mjs` from the passport instead (embed/extras-loader.script.ts).
      ...(mode === 'sdk'
        ? { resolve: { alias: [{ find: /\/extras-loader\.ts$/, replacement: '/extras-loader.script.ts' }] } }
        : {}),
      build: {
        outDir: resolve(here, 'dist/passport'),
        emptyOutDir: false,
        target: 'es2022',
        lib: { entry: lib.entry, formats: [lib.format], name: 'Passport', fileName: () => lib.file },
        // Vite leaves whitespace in ES library output (to keep pure annotations for a bundler
        // downstream); these files are served as they are, so minify them fully.
        minify: true,
        // Parts loaded on demand, under fixed names the passport serves.
        rolldownOptions: {
          // Code both the frame and a chunk use stays in frame.js (which the chunk imports)
          // instead of becoming one more file.
          preserveEntrySignatures: 'allow-extension',
          output: {
            minify: true,
            // No comments in what is served (rolldown keeps pure annotations otherwise).
            comments: false,
            chunkFileNames: (chunk) => {
              const file = onDemandChunks[chunk.name]
              // A chunk nobody named here (say, code two chunks share) would be served by no route.
              if (!file) throw new Error(`unexpected chunk ${chunk.name}: name it in onDemandChunks`)
              return file
            },
          },
        },
      },
    }
  }
  return {
    root: resolve(here, 'demo-sites'),
    build: {
      outDir: resolve(here, 'dist/sites'),
      emptyOutDir: true,
      target: 'es2022',
      modulePreload: { polyfill: false },
      rollupOptions: {
        input: {
          news: resolve(here, 'demo-sites/news/index.html'),
          shop: resolve(here, 'demo-sites/shop/index.html'),
          docs: resolve(here, 'demo-sites/docs/index.html'),
          hostile: resolve(here, 'demo-sites/hostile/index.html'),
        },
      },
    },
  }
})
