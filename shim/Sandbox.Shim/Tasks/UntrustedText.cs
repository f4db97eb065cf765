using System.Text;

namespace Sandbox.Shim.Tasks;

/// <summary>Text from a request, made fit for an error message and a log line: quoted, control characters escaped,
/// cut at 100 characters, so that a hostile id cannot forge log lines or flood a message.</summary>
public static class UntrustedText
{
    private const int MaxShown = 100;

    public static string Quote(string text)
    {
        var builder = new StringBuilder("\"");
        foreach (char c in text.Length <= MaxShown ? text : text[..MaxShown])
        {
            if (char.IsControl(c) || char.IsSurrogate(c))
                builder.Append($"\\u{(int)c:x4}");
            else
                builder.Append(c);
        }
        builder.Append('"');
        if (text.Length > MaxShown)
            builder.Append($" (cut, {text.Length} characters)");
        return builder.ToString();
    }
}
