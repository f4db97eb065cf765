namespace Sandbox.Runtime.Sandboxes;

/// <summary>
/// The guest image's manifest.txt (written by images/build-image.sh): input lines ("crun /usr/bin/crun sha256 X
/// package crun 1.8.1-1"), and one line per initramfs entry ("f 755 /usr/bin/crun SHA").
/// </summary>
public sealed class GuestImageManifest
{
    private readonly HashSet<string> _files = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _inputs = new(StringComparer.Ordinal);

    public static GuestImageManifest? TryRead(string path)
    {
        try
        {
            return Parse(File.ReadAllLines(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static GuestImageManifest Parse(IEnumerable<string> lines)
    {
        var manifest = new GuestImageManifest();
        foreach (var line in lines)
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 3 && fields[0] is "f" or "l" or "d" or "c")
                manifest._files.Add(fields[2].TrimStart('/'));
            else if (fields.Length >= 2 && !line.StartsWith('#'))
                manifest._inputs.TryAdd(fields[0], line[(fields[0].Length + 1)..]);
        }
        return manifest;
    }

    public bool ContainsFile(string relativePath) => _files.Contains(relativePath.TrimStart('/'));

    /// <summary>" (package NAME VERSION)" for an input line that names its Debian package, else "".</summary>
    public string VersionOf(string input)
    {
        if (!_inputs.TryGetValue(input, out var rest))
            return "";
        int at = rest.IndexOf(" package ", StringComparison.Ordinal);
        return at < 0 ? "" : $" ({rest[(at + 1)..]})";
    }
}
