/**
 * Owns the read-only Markdown documents the extension shows (run output, context previews, past
 * runs, metrics). They are virtual documents under the `agentls:` scheme: updating one while a run
 * streams is a content change, not an edit, so there is never an unsaved buffer to close or a
 * "Save changes?" prompt, and the user cannot type into output that is still arriving.
 */

import * as vscode from "vscode";

export const SCHEME = "agentls";

/** Coalesce bursts of output chunks into at most one document refresh per this many ms. */
const REFRESH_MS = 50;

export class DocumentStore implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly contents = new Map<string, string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  private readonly registrations: vscode.Disposable[];
  private counter = 0;

  readonly onDidChange = this.changed.event;

  constructor() {
    this.registrations = [
      vscode.workspace.registerTextDocumentContentProvider(SCHEME, this),
      // A closed document's text is dropped, so long sessions do not accumulate run outputs.
      vscode.workspace.onDidCloseTextDocument((doc) => {
        if (doc.uri.scheme === SCHEME) {
          this.contents.delete(doc.uri.toString());
        }
      }),
    ];
  }

  /** A fresh document URI; `name` becomes the tab title (a `.md` name makes it Markdown). */
  newUri(name: string): vscode.Uri {
    this.counter += 1;
    const safe = name.replace(/[^\w.-]+/g, "-");
    return vscode.Uri.from({ scheme: SCHEME, path: `/${safe}-${this.counter}.md` });
  }

  /** Sets a document's text; an open editor shows it shortly after. */
  set(uri: vscode.Uri, text: string): void {
    const key = uri.toString();
    this.contents.set(key, text);
    if (!this.timers.has(key)) {
      this.timers.set(
        key,
        setTimeout(() => {
          this.timers.delete(key);
          this.changed.fire(uri);
        }, REFRESH_MS),
      );
    }
  }

  /**
   * Sets the text and opens the document: in the column that already shows an agentls document
   * (so outputs collect as tabs of one column), else beside the current editor.
   *
   * @param preserveFocus Keep the user's editor active, so its selection stays the one the next
   *   run attaches (used for runs); documents opened to be read take the focus.
   */
  async show(uri: vscode.Uri, text: string, preserveFocus = false): Promise<vscode.TextEditor> {
    this.contents.set(uri.toString(), text);
    // The `.md` path makes it Markdown; setTextDocumentLanguage would close and reopen it, which
    // drops the text (see onDidCloseTextDocument above).
    const doc = await vscode.workspace.openTextDocument(uri);
    const column =
      vscode.window.visibleTextEditors.find((e) => e.document.uri.scheme === SCHEME)?.viewColumn ??
      vscode.ViewColumn.Beside;
    return vscode.window.showTextDocument(doc, { preview: false, viewColumn: column, preserveFocus });
  }

  /** Whether the document still has its text (it is dropped when the document is closed). */
  has(uri: vscode.Uri): boolean {
    return this.contents.has(uri.toString());
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.contents.get(uri.toString()) ?? "This agentls document is no longer available.";
  }

  dispose(): void {
    for (const timer of this.timers.values()) {
      clearTimeout(timer);
    }
    for (const r of this.registrations) {
      r.dispose();
    }
    this.changed.dispose();
  }
}
