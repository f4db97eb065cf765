using Sandbox.Ttrpc.Protocol;

namespace Sandbox.Ttrpc;

/// <summary>
/// The metadata of a ttrpc request (<c>Request.metadata</c>). Keys are compared lower-cased; a key may repeat.
/// </summary>
public sealed class TtrpcMetadata
{
    public static readonly TtrpcMetadata Empty = new(Array.Empty<KeyValuePair<string, string>>());

    private readonly IReadOnlyList<KeyValuePair<string, string>> _pairs;

    public TtrpcMetadata(IEnumerable<KeyValuePair<string, string>> pairs)
    {
        _pairs = pairs.Select(p => new KeyValuePair<string, string>(p.Key.ToLowerInvariant(), p.Value)).ToArray();
    }

    public IReadOnlyList<KeyValuePair<string, string>> Pairs => _pairs;

    /// <summary>The first value of <paramref name="key"/>, or null.</summary>
    public string? Get(string key)
    {
        key = key.ToLowerInvariant();
        foreach (var pair in _pairs)
        {
            if (pair.Key == key)
                return pair.Value;
        }
        return null;
    }

    public IEnumerable<string> GetAll(string key)
    {
        key = key.ToLowerInvariant();
        return _pairs.Where(p => p.Key == key).Select(p => p.Value);
    }

    internal static TtrpcMetadata FromRequest(Request request) =>
        request.Metadata.Count == 0
            ? Empty
            : new TtrpcMetadata(request.Metadata.Select(kv => new KeyValuePair<string, string>(kv.Key, kv.Value)));
}
