using System.Text.Json.Nodes;

namespace Sandbox.Fuzzing;

/// <summary>
/// Structural mutations of a JSON document (an OCI config.json): a field removed, a value of the wrong type, a huge or
/// negative number, a hostile string, an entry added to an array (an unknown mount type, a path outside the bundle),
/// deep nesting. One to three per call, each on a node picked at random anywhere in the tree.
/// </summary>
public static class JsonMutator
{
    public static JsonNode Mutate(Random random, JsonNode document, IReadOnlyList<JsonNode>? extraArrayEntries = null)
    {
        var root = document.DeepClone();
        int mutations = random.Next(1, 4);
        for (int m = 0; m < mutations; m++)
        {
            var nodes = Descendants(root).ToList();
            var target = nodes[random.Next(nodes.Count)];
            switch (random.Next(5))
            {
                case 0 when target.Parent is JsonObject parent:
                    parent.Remove(target.GetPropertyName());
                    break;
                case 1 when target is JsonArray array && extraArrayEntries is { Count: > 0 }:
                    array.Insert(random.Next(array.Count + 1), extraArrayEntries[random.Next(extraArrayEntries.Count)].DeepClone());
                    break;
                case 2 when target is JsonObject obj:
                    obj[HostileValues.String(random)] = Value(random);
                    break;
                default:
                    Replace(target, Value(random));
                    break;
            }
        }
        return root;
    }

    /// <summary>A JSON value of any type: hostile strings and numbers, booleans, null, empty or nested containers.</summary>
    public static JsonNode? Value(Random random) => random.Next(8) switch
    {
        0 => JsonValue.Create(HostileValues.String(random)),
        1 => JsonValue.Create(HostileValues.Number(random)),
        2 => JsonValue.Create(random.Next(2) == 0 ? 1.7976931348623157e308 : -0.5),
        3 => JsonValue.Create(random.Next(2) == 0),
        4 => null,
        5 => new JsonArray(JsonValue.Create(HostileValues.String(random)), JsonValue.Create(HostileValues.Number(random))),
        6 => new JsonObject { [HostileValues.String(random)] = JsonValue.Create(HostileValues.String(random)) },
        _ => Nested(random.Next(2, 200)),
    };

    private static JsonNode Nested(int depth)
    {
        JsonNode node = new JsonArray();
        for (int i = 0; i < depth; i++)
            node = new JsonArray(node);
        return node;
    }

    private static void Replace(JsonNode target, JsonNode? value)
    {
        switch (target.Parent)
        {
            case JsonObject parent:
                parent[target.GetPropertyName()] = value;
                break;
            case JsonArray array:
                array[array.IndexOf(target)] = value;
                break;
        }
    }

    private static IEnumerable<JsonNode> Descendants(JsonNode node)
    {
        yield return node;
        IEnumerable<JsonNode?> children = node switch
        {
            JsonObject obj => obj.Select(p => p.Value),
            JsonArray array => array,
            _ => [],
        };
        foreach (var child in children.ToList())
        {
            if (child is null)
                continue;
            foreach (var descendant in Descendants(child))
                yield return descendant;
        }
    }
}
