// Undo and redo over snapshots of the stored graph (and the ports each node had then), so that
// an undo restores exactly what was on the canvas, handles included.

const LIMIT = 100;

export class History {
  constructor(initial) {
    this.entries = [initial];
    this.index = 0;
  }

  push(snapshot) {
    const current = this.entries[this.index];
    if (current && JSON.stringify(current) === JSON.stringify(snapshot)) return false;
    this.entries = this.entries.slice(0, this.index + 1);
    this.entries.push(snapshot);
    if (this.entries.length > LIMIT) this.entries.shift();
    this.index = this.entries.length - 1;
    return true;
  }

  get canUndo() {
    return this.index > 0;
  }

  get canRedo() {
    return this.index < this.entries.length - 1;
  }

  undo() {
    if (!this.canUndo) return null;
    this.index -= 1;
    return this.entries[this.index];
  }

  redo() {
    if (!this.canRedo) return null;
    this.index += 1;
    return this.entries[this.index];
  }
}
