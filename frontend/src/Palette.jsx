// The palette: node types by group; drag one onto the canvas, or press it to add it in view.

export const DRAG_TYPE = "application/x-studio-node";

export function Palette({ groups, onAdd }) {
  return (
    <nav className="palette" aria-label="Node types">
      <p className="palette-hint">Drag a node onto the canvas.</p>
      {groups.map(([group, entries]) => (
        <section key={group} className="palette-group">
          <h3>{group}</h3>
          <ul>
            {entries.map((entry) => (
              <li key={entry.type}>
                <button
                  type="button"
                  className={`palette-item kind-${entry.type}`}
                  draggable
                  data-type={entry.type}
                  title={entry.description}
                  onDragStart={(event) => {
                    event.dataTransfer.setData(DRAG_TYPE, entry.type);
                    event.dataTransfer.effectAllowed = "move";
                  }}
                  onClick={() => onAdd(entry.type)}
                >
                  <span className="palette-label">{entry.label}</span>
                  {entry.description && <span className="palette-description">{entry.description}</span>}
                </button>
              </li>
            ))}
          </ul>
        </section>
      ))}
    </nav>
  );
}
