using System.Text;

namespace Sandbox.Hypervisors.Qemu;

/// <summary>A command line as shell text an operator can read and paste: one option per line, POSIX-quoted.</summary>
public static class CommandLineText
{
    public static string Format(string program, IReadOnlyList<string> args)
    {
        var text = new StringBuilder(Quote(program));
        for (var i = 0; i < args.Count; i++)
        {
            text.Append(" \\\n  ").Append(Quote(args[i]));
            // An option and its value stay on one line.
            if (args[i].StartsWith('-') && i + 1 < args.Count && !args[i + 1].StartsWith('-'))
                text.Append(' ').Append(Quote(args[++i]));
        }
        return text.Append('\n').ToString();
    }

    /// <summary>Leaves safe words bare, single-quotes everything else.</summary>
    public static string Quote(string word)
    {
        if (word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=:,+@%".Contains(c)))
            return word;
        return "'" + word.Replace("'", "'\\''") + "'";
    }
}
