namespace Sandbox.Hypervisors.Processes;

/// <summary>The last lines a process wrote, bounded, for error messages. Thread-safe.</summary>
public sealed class OutputTail
{
    private readonly int _maxLines;
    private readonly int _maxLineLength;
    private readonly Queue<string> _lines = new();

    public OutputTail(int maxLines = 40, int maxLineLength = 500)
    {
        _maxLines = maxLines;
        _maxLineLength = maxLineLength;
    }

    public void Add(string? line)
    {
        if (line is null)
            return;
        if (line.Length > _maxLineLength)
            line = line[.._maxLineLength] + "...";
        lock (_lines)
        {
            _lines.Enqueue(line);
            while (_lines.Count > _maxLines)
                _lines.Dequeue();
        }
    }

    public override string ToString()
    {
        lock (_lines)
            return string.Join('\n', _lines);
    }
}
